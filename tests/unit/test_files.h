// Reading test data files (tests/data, TESSERA_TEST_DATA).
#pragma once
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

namespace tessera::testing_util {

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << "cannot open " << path;
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// tests/data/chat_templates/<name>
inline std::string chat_template_data(const std::string& name) {
  return read_file(std::string(TESSERA_TEST_DATA) + "/chat_templates/" + name);
}

}  // namespace tessera::testing_util
