#include "dist/agreement.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "dist/runtime.h"

namespace tessera::dist {

void check_same_on_all_ranks(Communicator& comm, const std::string& what, const std::string& mine) {
  const int n = comm.size(), me = comm.rank();
  if (n == 1) return;
  // Rank 0 gathers every description, padded to the longest, and decides.
  int64_t len = static_cast<int64_t>(mine.size());
  std::vector<int64_t> lens(static_cast<size_t>(n));
  comm.gather(&len, sizeof len, lens.data(), 0);
  int64_t width = me == 0 ? *std::max_element(lens.begin(), lens.end()) : 0;
  comm.broadcast(&width, sizeof width, 0);
  std::string padded = mine;
  padded.resize(static_cast<size_t>(width), '\0');
  std::string all(me == 0 ? static_cast<size_t>(width) * n : 0, '\0');
  comm.gather(padded.data(), width, all.data(), 0);

  std::string verdict;  // empty: all equal
  if (me == 0) {
    for (int r = 1; r < n && verdict.empty(); ++r) {
      const std::string theirs = all.substr(static_cast<size_t>(width) * r, lens[r]);
      if (theirs != mine)
        verdict = "the ranks were not started alike: rank " + std::to_string(r) + "'s " + what +
                  " differs from rank 0's\n  rank 0: " + mine + "\n  rank " + std::to_string(r) +
                  ": " + theirs;
    }
  }
  verdict = broadcast_string(comm, verdict, 0);
  if (!verdict.empty()) throw CollectiveError(verdict);
}

void on_all_ranks(Communicator& comm, const std::function<void()>& body) {
  if (comm.size() == 1) return body();
  std::string error;
  int32_t failed = 0;
  try {
    body();
  } catch (const Error& e) {
    error = e.what();
    failed = 1;
  }
  std::vector<int32_t> flags(static_cast<size_t>(comm.size()));
  comm.gather(&failed, sizeof failed, flags.data(), 0);
  int32_t first = -1;
  if (comm.rank() == 0)
    for (int r = comm.size() - 1; r >= 0; --r)
      if (flags[r] != 0) first = r;
  comm.broadcast(&first, sizeof first, 0);
  if (first < 0) return;
  const std::string message = broadcast_string(comm, error, first);
  throw CollectiveError(first == 0 ? message : "rank " + std::to_string(first) + ": " + message);
}

}  // namespace tessera::dist
