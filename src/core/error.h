// Error type for expected failures caused by bad input (files, flags, requests).
// Thrown inside the library, caught at the boundary (CLI main, HTTP handler) and
// turned into a message / non-zero exit / JSON error. Broken invariants use assert.
#pragma once
#include <stdexcept>
#include <string>

namespace tessera {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

}  // namespace tessera
