#include "core/byte_size.h"

#include <cctype>
#include <utility>

#include "core/error.h"

namespace tessera {

int64_t parse_byte_size(const std::string& s, const std::string& what) {
  size_t pos = 0;
  double v = 0;
  try {
    v = std::stod(s, &pos);
  } catch (const std::exception&) {
    throw Error(what + ": '" + s + "' is not a size (e.g. 2GiB, 512MiB)");
  }
  std::string unit = s.substr(pos);
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  static const std::pair<const char*, double> units[] = {
      {"", 1},        {"B", 1},         {"K", 1024.0},   {"KIB", 1024.0}, {"KB", 1e3},
      {"M", 1 << 20}, {"MIB", 1 << 20}, {"MB", 1e6},     {"G", 1 << 30},  {"GIB", 1 << 30},
      {"GB", 1e9},    {"T", 0x1p40},    {"TIB", 0x1p40}, {"TB", 1e12}};
  for (const auto& [name, mult] : units) {
    if (unit == name) {
      const double bytes = v * mult;
      if (!(bytes >= 1) || bytes > 0x1p62) throw Error(what + ": '" + s + "' is out of range");
      return static_cast<int64_t>(bytes);
    }
  }
  throw Error(what + ": unknown unit in '" + s + "' (use B, KiB, MiB, GiB, KB, MB, GB)");
}

}  // namespace tessera
