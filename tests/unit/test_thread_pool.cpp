// ThreadPool: every index runs exactly once per call, thread indices stay in range and
// are not shared by two ranges at once, across many back-to-back calls of varied shape.
#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "core/thread_pool.h"

namespace tessera {
namespace {

TEST(ThreadPool, EveryIndexOnceAcrossManyCalls) {
  for (int n_threads : {1, 2, 3, 4}) {
    ThreadPool pool(n_threads);
    std::vector<std::atomic<int>> hits(5000);
    std::vector<std::atomic<int>> in_use(n_threads);
    for (int call = 0; call < 3000; ++call) {
      const int64_t n = 1 + (call * 7919) % static_cast<int64_t>(hits.size());
      const int64_t grain = 1 + call % 13;
      for (int64_t i = 0; i < n; ++i) hits[i].store(0);
      std::atomic<bool> bad_thread{false};
      pool.parallel_for(
          n,
          [&](int64_t b, int64_t e, int thread) {
            if (thread < 0 || thread >= n_threads || in_use[thread].fetch_add(1) != 0) {
              bad_thread = true;
            }
            if (e - b < grain && e != n) bad_thread = true;
            for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
            if (thread >= 0 && thread < n_threads) in_use[thread].fetch_sub(1);
          },
          grain);
      ASSERT_FALSE(bad_thread) << "threads=" << n_threads << " call=" << call;
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(hits[i].load(), 1) << "threads=" << n_threads << " call=" << call << " i=" << i;
      }
    }
  }
}

}  // namespace
}  // namespace tessera
