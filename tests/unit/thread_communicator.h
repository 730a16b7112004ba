// A communicator whose ranks are threads of this process, for testing multi-rank code
// (tensor-parallel models, start-up checks) without MPI. Collectives follow the
// Communicator contract, all_reduce_sum summing in rank order as the MPI one does.
#pragma once
#include <barrier>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "dist/communicator.h"

namespace tessera::testing {

// What the ranks of one group share: a barrier and one pointer slot per rank.
struct ThreadGroup {
  explicit ThreadGroup(int n) : size(n), sync(n), slots(n) {}
  int size;
  std::barrier<> sync;
  std::vector<const void*> slots;
};

class ThreadCommunicator final : public dist::Communicator {
 public:
  ThreadCommunicator(ThreadGroup& g, int rank) : g_(g), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return g_.size; }

  void all_reduce_sum(float* x, int64_t n) override {
    post(x);
    std::vector<float> sum(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      float s = static_cast<const float*>(g_.slots[0])[i];
      for (int r = 1; r < g_.size; ++r) s += static_cast<const float*>(g_.slots[r])[i];
      sum[static_cast<size_t>(i)] = s;
    }
    g_.sync.arrive_and_wait();  // every rank has read every partial
    std::memcpy(x, sum.data(), sizeof(float) * static_cast<size_t>(n));
  }
  void all_gather(const float* in, int64_t n, float* out) override {
    post(in);
    for (int r = 0; r < g_.size; ++r)
      std::memcpy(out + r * n, g_.slots[r], sizeof(float) * static_cast<size_t>(n));
    g_.sync.arrive_and_wait();
  }
  void broadcast(void* data, int64_t n_bytes, int root) override {
    post(data);
    if (rank_ != root) std::memcpy(data, g_.slots[root], static_cast<size_t>(n_bytes));
    g_.sync.arrive_and_wait();
  }
  void gather(const void* in, int64_t n_bytes, void* out, int root) override {
    post(in);
    if (rank_ == root)
      for (int r = 0; r < g_.size; ++r)
        std::memcpy(static_cast<char*>(out) + r * n_bytes, g_.slots[r],
                    static_cast<size_t>(n_bytes));
    g_.sync.arrive_and_wait();
  }
  void barrier() override { g_.sync.arrive_and_wait(); }

 private:
  // Publishes this rank's buffer and waits until every rank has published its own.
  void post(const void* p) {
    g_.slots[rank_] = p;
    g_.sync.arrive_and_wait();
  }
  ThreadGroup& g_;
  int rank_;
};

// Runs body(comm) on n threads, one rank each, and waits for all. An exception in a rank is
// rethrown after every thread has ended (the ranks must fail together, as collectives do).
inline void run_ranks(int n, const std::function<void(dist::Communicator&)>& body) {
  ThreadGroup g(n);
  std::vector<std::exception_ptr> errors(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      ThreadCommunicator comm(g, r);
      try {
        body(comm);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  for (std::thread& t : threads) t.join();
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace tessera::testing
