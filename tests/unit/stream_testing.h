// Reading a request's stream to its end in tests.
#pragma once
#include <chrono>
#include <vector>

#include "engine/engine.h"

namespace tessera::testing_util {

// Reads updates until the final one (true) or until `limit` passes (false). A deadline,
// not a count of reads: tokens generated before an abort arrive first, and a loaded
// machine (the suite runs tests in parallel) may delay the engine thread. The generated
// token ids are appended to `ids` when given.
inline bool read_to_end(RequestStream& s, std::vector<int32_t>* ids = nullptr,
                        std::chrono::seconds limit = std::chrono::seconds(60)) {
  RequestUpdate u;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!is_finished(u.finish) && std::chrono::steady_clock::now() < deadline)
    s.next(u, std::chrono::milliseconds(20));  // appends to u.tokens
  if (ids)
    for (const auto& t : u.tokens) ids->push_back(t.token);
  return is_finished(u.finish);
}

}  // namespace tessera::testing_util
