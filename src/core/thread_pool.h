// Persistent worker pool for data-parallel loops in the per-token path.
//
// parallel_for(n, fn) cuts [0, n) into a few contiguous chunks per thread; the calling
// thread and the workers claim chunks from one atomic counter until none is left, so a
// worker that the OS has not scheduled yet (the machine may be oversubscribed) costs
// nothing: the others take its share instead of waiting for it. Workers spin briefly on
// the counter before parking on a condition variable, so back-to-back ops (one per layer
// step) do not pay a futex wake each. No allocation happens per call.
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
  // Every range holds at least `grain` items (except the last), so small loops run on
  // fewer threads, or inline. thread_index < n_threads() identifies the thread running the
  // range (0 = the caller); one thread runs its ranges one after another, so per-thread
  // scratch indexed by it is safe. Which thread runs which range is not fixed.
  // Not reentrant: fn must not call parallel_for on the same pool.
  using RangeFn = std::function<void(int64_t, int64_t, int)>;
  void parallel_for(int64_t n, const RangeFn& fn, int64_t grain = 1);

  static int default_threads();

 private:
  void worker(int index);
  // Claims and runs chunks of the current call until none is left.
  void run_chunks(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  // The current call: (call number << 32) | next unclaimed chunk. A chunk is claimed by a
  // compare-exchange on the whole word; between calls the index is parked at its maximum
  // (no chunk to claim) while the fields below are rewritten, so a late worker can never
  // claim a chunk against half-written fields. They stay fixed until every claimed chunk
  // of the call is done.
  std::atomic<uint64_t> work_{0};
  std::atomic<const RangeFn*> fn_{nullptr};
  std::atomic<int64_t> n_{0};
  std::atomic<int64_t> chunk_{1};
  std::atomic<uint32_t> n_chunks_{0};
  std::atomic<uint32_t> done_{0};  // chunks finished in the current call
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace tessera
