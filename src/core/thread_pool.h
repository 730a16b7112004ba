// Persistent worker pool for data-parallel loops in the per-token path.
//
// parallel_for(n, fn) splits [0, n) into one contiguous range per thread; the calling
// thread runs range 0 itself. Workers spin briefly on a generation counter before
// parking on a condition variable, so back-to-back ops (one per layer step) do not pay
// a futex wake each. No allocation happens per call.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tessera {

class ThreadPool {
 public:
  // n_threads <= 0 picks the number of physical cores we can see (hardware threads).
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int n_threads() const { return n_threads_; }

  // fn(begin, end, thread_index) over a partition of [0, n). Blocks until all ranges ran.
  // Each thread gets at least `grain` items (small loops run on fewer threads, or inline).
  // Not reentrant: fn must not call parallel_for on the same pool.
  using RangeFn = std::function<void(int64_t, int64_t, int)>;
  void parallel_for(int64_t n, const RangeFn& fn, int64_t grain = 1);

  static int default_threads();

 private:
  void worker(int index);
  void run_range(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  const RangeFn* fn_ = nullptr;
  int64_t n_ = 0;
  int n_active_ = 0;  // threads that get a range in the current call
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace tessera
