// Reading a request's stream to its end in tests.
#pragma once
#include <chrono>

#include "engine/engine.h"

namespace tessera::testing_util {

// Reads updates until the final one (true) or until `limit` passes (false). A deadline,
// not a count of reads: tokens generated before an abort arrive first, and a loaded
// machine (the suite runs tests in parallel) may delay the engine thread.
inline bool read_to_end(RequestStream& s, std::chrono::seconds limit = std::chrono::seconds(60)) {
  RequestUpdate u;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!is_finished(u.finish) && std::chrono::steady_clock::now() < deadline)
    s.next(u, std::chrono::milliseconds(20));
  return is_finished(u.finish);
}

}  // namespace tessera::testing_util
