// A Communicator that forwards every call to another and counts, per collective, the calls,
// the payload bytes and the wall time spent inside them: how much of a run's step time goes
// to communication (tessera run --verbose / --json, tessera bench-comm).
//
// Bytes are this rank's payload as the caller sees it (all_reduce_sum: 4·n; all_gather: the
// 4·n it contributes; broadcast: n_bytes; gather: n_bytes; send, recv: n_bytes), not what the
// transport puts on the wire (a ring all-reduce sends about 2·(T−1)/T of it, a tree more). Wall
// time includes the wait for the slowest rank to arrive, which is where load imbalance shows up.
//
// Counters are atomics: the engine thread runs the collectives while another thread may
// read a snapshot() (the numbers of one snapshot are then from moments a call apart).
// Groups split off it (pipeline parallelism: a TP group per stage, a pipeline group per TP
// rank) are timed into its counters too.
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>

#include "dist/communicator.h"

namespace tessera::dist {

enum class Collective { kAllReduceSum, kAllGather, kBroadcast, kGather, kBarrier, kSend, kRecv };
inline constexpr int kNumCollectives = 7;
const char* collective_name(Collective c);

struct CollectiveStats {
  int64_t calls = 0;
  int64_t bytes = 0;
  double seconds = 0.0;
};

struct CommStats {
  std::array<CollectiveStats, kNumCollectives> by_collective{};
  const CollectiveStats& operator[](Collective c) const {
    return by_collective[static_cast<size_t>(c)];
  }
  // Sums over every collective.
  CollectiveStats total() const;
  // Each counter of *this minus the same counter of `earlier` (an interval's share).
  CommStats since(const CommStats& earlier) const;
};

class TimedCommunicator final : public Communicator {
 public:
  // `inner` must outlive this object.
  explicit TimedCommunicator(Communicator& inner) : inner_(inner), counters_(own_counters_) {}

  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  void all_reduce_sum(float* x, int64_t n) override;
  void all_gather(const float* in, int64_t n, float* out) override;
  void broadcast(void* data, int64_t n_bytes, int root) override;
  void gather(const void* in, int64_t n_bytes, void* out, int root) override;
  void barrier() override;
  // A group of inner's (inner.split), whose calls count in this object's counters; this
  // object must outlive it.
  std::unique_ptr<Communicator> split(int color, int key) override;
  void send(const void* data, int64_t n_bytes, int dest, int tag) override;
  void recv(void* data, int64_t n_bytes, int src, int tag) override;

  CommStats snapshot() const;
  void reset();

 private:
  struct Counters {
    std::atomic<int64_t> calls{0}, bytes{0}, nanoseconds{0};
  };
  // Runs f (the forwarded call) and adds its wall time to collective c's counters.
  template <class F>
  void timed(Collective c, int64_t bytes, F&& f);

  using CounterArray = std::array<Counters, kNumCollectives>;
  // A split-off group: owns its inner communicator, counts into `counters`.
  TimedCommunicator(std::unique_ptr<Communicator> owned, CounterArray& counters)
      : owned_(std::move(owned)), inner_(*owned_), counters_(counters) {}

  std::unique_ptr<Communicator> owned_;
  Communicator& inner_;
  CounterArray own_counters_;
  CounterArray& counters_ = own_counters_;
};

}  // namespace tessera::dist
