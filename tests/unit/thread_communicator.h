// A communicator whose ranks are threads of this process, for testing multi-rank code
// (tensor- and pipeline-parallel models, start-up checks) without MPI. Collectives follow
// the Communicator contract, all_reduce_sum summing in rank order as the MPI one does;
// sends are eager (copied into the receiver's mailbox), so send never blocks.
#pragma once
#include <algorithm>
#include <barrier>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <vector>

#include "dist/communicator.h"

namespace tessera::testing {

// What the ranks of one group share: a barrier, one pointer slot per rank, the groups of
// the split in progress, and the messages not yet received, by (source, destination, tag).
struct ThreadGroup {
  explicit ThreadGroup(int n) : size(n), sync(n), slots(n) {}
  int size;
  std::barrier<> sync;
  std::vector<const void*> slots;
  std::vector<std::shared_ptr<ThreadGroup>> split_groups;  // by color index
  std::mutex mail_mutex;
  std::condition_variable mail_cv;
  std::map<std::tuple<int, int, int>, std::deque<std::vector<char>>> mail;
};

class ThreadCommunicator final : public dist::Communicator {
 public:
  ThreadCommunicator(ThreadGroup& g, int rank) : g_(g), rank_(rank) {}
  // A rank of a group split off another (keeps the group alive).
  ThreadCommunicator(std::shared_ptr<ThreadGroup> g, int rank)
      : owned_(std::move(g)), g_(*owned_), rank_(rank) {}
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

  std::unique_ptr<dist::Communicator> split(int color, int key) override {
    const int mine[2] = {color, key};
    post(mine);
    // Every rank reads all (color, key) pairs; the members of this rank's group, by key.
    std::vector<int> colors;
    std::vector<std::tuple<int, int>> members;  // (key, rank) of this color
    for (int r = 0; r < g_.size; ++r) {
      const int* ck = static_cast<const int*>(g_.slots[r]);
      if (std::find(colors.begin(), colors.end(), ck[0]) == colors.end()) colors.push_back(ck[0]);
      if (ck[0] == color) members.emplace_back(ck[1], r);
    }
    std::sort(members.begin(), members.end());
    const int index =
        static_cast<int>(std::find(colors.begin(), colors.end(), color) - colors.begin());
    int new_rank = 0;
    while (std::get<1>(members[new_rank]) != rank_) ++new_rank;
    g_.sync.arrive_and_wait();  // every rank has read every pair
    if (rank_ == 0) {
      g_.split_groups.clear();
      for (const int c : colors) {
        int n = 0;
        for (int r = 0; r < g_.size; ++r) n += static_cast<const int*>(g_.slots[r])[0] == c;
        g_.split_groups.push_back(std::make_shared<ThreadGroup>(n));
      }
    }
    g_.sync.arrive_and_wait();
    auto out = std::make_unique<ThreadCommunicator>(g_.split_groups[index], new_rank);
    g_.sync.arrive_and_wait();  // every rank has taken its group before the next split
    return out;
  }
  void send(const void* data, int64_t n_bytes, int dest, int tag) override {
    const char* p = static_cast<const char*>(data);
    {
      std::lock_guard<std::mutex> lock(g_.mail_mutex);
      g_.mail[{rank_, dest, tag}].emplace_back(p, p + n_bytes);
    }
    g_.mail_cv.notify_all();
  }
  void recv(void* data, int64_t n_bytes, int src, int tag) override {
    std::unique_lock<std::mutex> lock(g_.mail_mutex);
    auto& queue = g_.mail[{src, rank_, tag}];
    g_.mail_cv.wait(lock, [&] { return !queue.empty(); });
    if (static_cast<int64_t>(queue.front().size()) != n_bytes)
      throw std::runtime_error("thread communicator: message of another size");
    std::memcpy(data, queue.front().data(), static_cast<size_t>(n_bytes));
    queue.pop_front();
  }

 private:
  // Publishes this rank's buffer and waits until every rank has published its own.
  void post(const void* p) {
    g_.slots[rank_] = p;
    g_.sync.arrive_and_wait();
  }
  std::shared_ptr<ThreadGroup> owned_;  // for a split-off group
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
