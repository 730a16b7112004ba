#include "core/thread_pool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include <algorithm>

namespace tessera {

namespace {
// One spin-wait step: a pause hint where the CPU has one.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// ~0.1 ms of pause instructions: long enough to catch the next op of a forward pass,
// short enough not to burn a core when the machine is oversubscribed.
constexpr int kSpinIterations = 2000;
// Chunks per thread: enough to even out threads that start late or run slower.
constexpr int64_t kChunksPerThread = 4;
constexpr uint64_t kIndexMask = 0xffffffffu;
}  // namespace

int ThreadPool::default_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads > 0 ? n_threads : default_threads()) {
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
    work_.fetch_add(uint64_t{1} << 32);
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_chunks(int index) {
  uint64_t w = work_.load(std::memory_order_acquire);
  for (;;) {
    const uint64_t chunk = w & kIndexMask;
    if (chunk >= n_chunks_.load(std::memory_order_relaxed)) return;
    if (!work_.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel,
                                     std::memory_order_acquire)) {
      continue;  // w now holds the current value
    }
    // The claim pins this call's fields until done_ counts the chunk.
    const int64_t n = n_.load(std::memory_order_relaxed);
    const int64_t size = chunk_.load(std::memory_order_relaxed);
    const int64_t begin = static_cast<int64_t>(chunk) * size;
    (*fn_.load(std::memory_order_relaxed))(begin, std::min(n, begin + size), index);
    done_.fetch_add(1, std::memory_order_acq_rel);
    w = work_.load(std::memory_order_acquire);
  }
}

void ThreadPool::parallel_for(int64_t n, const RangeFn& fn, int64_t grain) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t by_grain = (n + grain - 1) / grain;
  const int n_active = static_cast<int>(std::min<int64_t>(n_threads_, by_grain));
  if (n_active <= 1) {
    fn(0, n, 0);
    return;
  }
  const int64_t size =
      std::max(grain, (n + n_active * kChunksPerThread - 1) / (n_active * kChunksPerThread));
  const auto n_chunks = static_cast<uint32_t>((n + size - 1) / size);
  // Close the previous call first: a worker still holding its counter value then fails
  // its compare-exchange instead of claiming a "chunk" against the fields written below.
  const uint64_t prev = work_.load(std::memory_order_relaxed) >> 32;
  work_.store((prev << 32) | kIndexMask, std::memory_order_release);
  fn_.store(&fn, std::memory_order_relaxed);
  n_.store(n, std::memory_order_relaxed);
  chunk_.store(size, std::memory_order_relaxed);
  n_chunks_.store(n_chunks, std::memory_order_relaxed);
  done_.store(0, std::memory_order_relaxed);
  {
    // Publishing under the mutex pairs with the workers' predicate check, so a worker
    // that is about to park cannot miss this call.
    std::lock_guard<std::mutex> lock(mu_);
    work_.store((prev + 1) << 32, std::memory_order_release);
  }
  cv_.notify_all();
  run_chunks(0);
  // Chunks claimed by workers may still be running; spin briefly, then yield (a worker
  // may have been descheduled on a busy machine).
  for (int spins = 0; done_.load(std::memory_order_acquire) != n_chunks; ++spins) {
    if (spins < kSpinIterations)
      cpu_relax();
    else
      std::this_thread::yield();
  }
}

void ThreadPool::worker(int index) {
  uint64_t seen = 0;  // call number last worked on
  for (;;) {
    int spins = 0;
    uint64_t call;
    while ((call = work_.load(std::memory_order_acquire) >> 32) == seen &&
           spins < kSpinIterations) {
      cpu_relax();
      ++spins;
    }
    if (call == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return (work_.load(std::memory_order_acquire) >> 32) != seen; });
      call = work_.load(std::memory_order_acquire) >> 32;
    }
    seen = call;
    if (stop_.load()) return;
    run_chunks(index);
  }
}

}  // namespace tessera
