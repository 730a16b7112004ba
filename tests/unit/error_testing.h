// The message of the tessera::Error that f throws ("" when it throws none), for tests that
// check what an error says.
#pragma once
#include <functional>
#include <string>

#include "core/error.h"

namespace tessera::testing_util {

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace tessera::testing_util
