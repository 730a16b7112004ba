// Reference logits of the tiny per-architecture models in tests/data/archs/ (written by
// scripts/gen_arch_refs*.py), shared by the GGUF and Hugging Face directory tests.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace tessera::archref {

inline const std::string kDir = std::string(TESSERA_TEST_DATA) + "/archs/";

struct Reference {
  int n_vocab = 0;
  std::vector<std::vector<int32_t>> prompts;
  std::vector<float> logits;  // [rows, n_vocab]
  bool last_only = false;     // one row per prompt (its last position) instead of every position
  bool centered = false;      // rows are logits up to a constant, shifted to mean 0
};

inline Reference load_reference(const std::string& name) {
  Reference r;
  std::ifstream jf(kDir + name + ".json");
  EXPECT_TRUE(jf.good()) << name;
  const nlohmann::json j = nlohmann::json::parse(jf);
  r.n_vocab = j.at("n_vocab");
  r.prompts = j.at("prompts").get<std::vector<std::vector<int32_t>>>();
  r.last_only = j.value("last_only", false);
  r.centered = j.value("centered", false);
  size_t rows = 0;
  for (const auto& p : r.prompts) rows += r.last_only ? 1 : p.size();
  r.logits.resize(rows * r.n_vocab);
  std::ifstream lf(kDir + name + ".logits.f32", std::ios::binary);
  lf.read(reinterpret_cast<char*>(r.logits.data()), sizeof(float) * r.logits.size());
  EXPECT_TRUE(lf.good()) << name << ": logits file too short";
  return r;
}

// max |ours - ref| / max |ref| over n values.
inline double rel_error(const float* ours, const float* ref, int n) {
  double max_diff = 0.0, max_ref = 0.0;
  for (int i = 0; i < n; ++i) {
    max_diff = std::max(max_diff, std::fabs(double(ours[i]) - ref[i]));
    max_ref = std::max(max_ref, std::fabs(double(ref[i])));
  }
  return max_diff / max_ref;
}

}  // namespace tessera::archref
