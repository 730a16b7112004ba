#include "core/thread_pool.h"

#include <immintrin.h>

#include <algorithm>

namespace tessera {

namespace {
// ~0.1 ms of pause instructions: long enough to catch the next op of a forward pass,
// short enough not to burn a core when the machine is oversubscribed.
constexpr int kSpinIterations = 2000;
}

int ThreadPool::default_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

ThreadPool::ThreadPool(int n_threads)
    : n_threads_(n_threads > 0 ? n_threads : default_threads()) {
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_range(int index) {
  if (index >= n_active_) return;
  const int64_t chunk = (n_ + n_active_ - 1) / n_active_;
  const int64_t begin = std::min<int64_t>(n_, chunk * index);
  const int64_t end = std::min<int64_t>(n_, begin + chunk);
  if (begin < end) (*fn_)(begin, end, index);
}

void ThreadPool::parallel_for(int64_t n, const RangeFn& fn, int64_t grain) {
  if (n <= 0) return;
  const int64_t by_grain = (n + std::max<int64_t>(grain, 1) - 1) / std::max<int64_t>(grain, 1);
  const int n_active = static_cast<int>(std::min<int64_t>(n_threads_, by_grain));
  if (n_active <= 1) {
    fn(0, n, 0);
    return;
  }
  fn_ = &fn;
  n_ = n;
  n_active_ = n_active;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  {
    // Publishing under the mutex pairs with the workers' predicate check, so a worker
    // that is about to park cannot miss this generation.
    std::lock_guard<std::mutex> lock(mu_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  cv_.notify_all();
  run_range(0);
  // Spin briefly, then yield: a worker may have been descheduled on a busy machine.
  for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins < kSpinIterations) _mm_pause();
    else std::this_thread::yield();
  }
  fn_ = nullptr;
}

void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    int spins = 0;
    uint64_t gen;
    while ((gen = generation_.load(std::memory_order_acquire)) == seen && spins < kSpinIterations) {
      _mm_pause();
      ++spins;
    }
    if (gen == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      gen = generation_.load(std::memory_order_acquire);
    }
    seen = gen;
    if (stop_.load()) return;
    run_range(index);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

}  // namespace tessera
