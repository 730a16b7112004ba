#include "dist/timed_communicator.h"

#include <chrono>

namespace tessera::dist {

const char* collective_name(Collective c) {
  switch (c) {
    case Collective::kAllReduceSum:
      return "all_reduce_sum";
    case Collective::kAllGather:
      return "all_gather";
    case Collective::kBroadcast:
      return "broadcast";
    case Collective::kGather:
      return "gather";
    case Collective::kBarrier:
      return "barrier";
    case Collective::kSend:
      return "send";
    case Collective::kRecv:
      return "recv";
  }
  return "?";
}

CollectiveStats CommStats::total() const {
  CollectiveStats t;
  for (const CollectiveStats& s : by_collective) {
    t.calls += s.calls;
    t.bytes += s.bytes;
    t.seconds += s.seconds;
  }
  return t;
}

CommStats CommStats::since(const CommStats& earlier) const {
  CommStats d;
  for (size_t i = 0; i < by_collective.size(); ++i) {
    d.by_collective[i].calls = by_collective[i].calls - earlier.by_collective[i].calls;
    d.by_collective[i].bytes = by_collective[i].bytes - earlier.by_collective[i].bytes;
    d.by_collective[i].seconds = by_collective[i].seconds - earlier.by_collective[i].seconds;
  }
  return d;
}

template <class F>
void TimedCommunicator::timed(Collective c, int64_t bytes, F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  Counters& k = counters_[static_cast<size_t>(c)];
  k.calls.fetch_add(1, std::memory_order_relaxed);
  k.bytes.fetch_add(bytes, std::memory_order_relaxed);
  k.nanoseconds.fetch_add(ns, std::memory_order_relaxed);
}

void TimedCommunicator::all_reduce_sum(float* x, int64_t n) {
  timed(Collective::kAllReduceSum, 4 * n, [&] { inner_.all_reduce_sum(x, n); });
}

void TimedCommunicator::all_gather(const float* in, int64_t n, float* out) {
  timed(Collective::kAllGather, 4 * n, [&] { inner_.all_gather(in, n, out); });
}

void TimedCommunicator::broadcast(void* data, int64_t n_bytes, int root) {
  timed(Collective::kBroadcast, n_bytes, [&] { inner_.broadcast(data, n_bytes, root); });
}

void TimedCommunicator::gather(const void* in, int64_t n_bytes, void* out, int root) {
  timed(Collective::kGather, n_bytes, [&] { inner_.gather(in, n_bytes, out, root); });
}

void TimedCommunicator::barrier() {
  timed(Collective::kBarrier, 0, [&] { inner_.barrier(); });
}

std::unique_ptr<Communicator> TimedCommunicator::split(int color, int key) {
  return std::unique_ptr<Communicator>(new TimedCommunicator(inner_.split(color, key), counters_));
}

void TimedCommunicator::send(const void* data, int64_t n_bytes, int dest, int tag) {
  timed(Collective::kSend, n_bytes, [&] { inner_.send(data, n_bytes, dest, tag); });
}

void TimedCommunicator::recv(void* data, int64_t n_bytes, int src, int tag) {
  timed(Collective::kRecv, n_bytes, [&] { inner_.recv(data, n_bytes, src, tag); });
}

CommStats TimedCommunicator::snapshot() const {
  CommStats s;
  for (size_t i = 0; i < counters_.size(); ++i) {
    s.by_collective[i].calls = counters_[i].calls.load(std::memory_order_relaxed);
    s.by_collective[i].bytes = counters_[i].bytes.load(std::memory_order_relaxed);
    s.by_collective[i].seconds = 1e-9 * counters_[i].nanoseconds.load(std::memory_order_relaxed);
  }
  return s;
}

void TimedCommunicator::reset() {
  for (Counters& k : counters_) {
    k.calls.store(0, std::memory_order_relaxed);
    k.bytes.store(0, std::memory_order_relaxed);
    k.nanoseconds.store(0, std::memory_order_relaxed);
  }
}

}  // namespace tessera::dist
