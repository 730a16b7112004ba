// Typed reads of a Hugging Face config.json (or any JSON object of settings), with messages
// that name the file and the key. Shared by the HF loaders.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/error.h"

namespace tessera::hf {

struct ConfigReader {
  const nlohmann::json& cfg;
  std::string where;

  bool has(const char* key) const { return cfg.contains(key) && !cfg[key].is_null(); }
  int64_t get_int(const char* key, std::optional<int64_t> def = std::nullopt) const {
    if (!has(key)) {
      if (def) return *def;
      throw Error(where + ": missing \"" + key + "\"");
    }
    if (!cfg[key].is_number_integer()) throw Error(where + ": \"" + key + "\" is not an integer");
    const int64_t v = cfg[key].get<int64_t>();
    if (v <= 0 || v > (int64_t{1} << 31))
      throw Error(where + ": \"" + key + "\" = " + std::to_string(v) + " is out of range");
    return v;
  }
  double get_float(const nlohmann::json& obj, const char* key, std::optional<double> def) const {
    if (!obj.contains(key) || obj[key].is_null()) {
      if (def) return *def;
      throw Error(where + ": missing \"" + key + "\"");
    }
    if (!obj[key].is_number()) throw Error(where + ": \"" + key + "\" is not a number");
    return obj[key].get<double>();
  }
};

}  // namespace tessera::hf
