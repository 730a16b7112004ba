// The collectives that tensor parallelism needs, behind one interface: a group of `size()`
// processes (ranks 0..size-1) that all call the same collective in the same order.
//
// Implementations: LocalCommunicator (one process, every call trivial; what a run without
// MPI uses) and the MPI one (runtime_mpi.cpp). Buffers are host memory.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

namespace tessera::dist {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // x[n] = the sum over ranks of every rank's x[n], in place. Every rank receives the same
  // bits: each element is summed in rank order, ((x_0 + x_1) + x_2) + ..., whatever the
  // transport does, so replicated computations downstream never drift apart between ranks.
  virtual void all_reduce_sum(float* x, int64_t n) = 0;
  // out[size() * n] = every rank's in[n], in rank order (the same on every rank).
  virtual void all_gather(const float* in, int64_t n, float* out) = 0;
  // root's n_bytes at data are copied into data on every other rank (n_bytes equal on all).
  virtual void broadcast(void* data, int64_t n_bytes, int root) = 0;
  // On root, out[size() * n_bytes] receives rank r's n_bytes of `in` at out + r * n_bytes;
  // out is not touched (and may be null) on the other ranks.
  virtual void gather(const void* in, int64_t n_bytes, void* out, int root) = 0;
  // Returns once every rank has called it.
  virtual void barrier() = 0;

  // Pipeline parallelism (point to point and sub-groups). Communicators that do not offer
  // them keep these defaults, which throw tessera::Error.
  //
  // A new communicator of the ranks that pass the same `color`, ranked by `key` (ties by
  // this communicator's rank), as MPI_Comm_split. Collective: every rank calls it, in the
  // same order as the other collectives. The result outlives nothing of this one's
  // (callers free it before finalize()).
  virtual std::unique_ptr<Communicator> split(int color, int key);
  // Sends n_bytes at data to rank `dest`, which receives them with recv(.., src = this
  // rank, the same tag). Returns when data may be reused (possibly before dest received).
  // Messages between two ranks with one tag arrive in the order they were sent.
  virtual void send(const void* data, int64_t n_bytes, int dest, int tag);
  // Receives into data the n_bytes that rank `src` sends with `tag`; returns once they are
  // there.
  virtual void recv(void* data, int64_t n_bytes, int src, int tag);
};

// One process: rank 0 of 1.
class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void all_reduce_sum(float*, int64_t) override {}
  void all_gather(const float* in, int64_t n, float* out) override;
  void broadcast(void*, int64_t, int) override {}
  void gather(const void* in, int64_t n_bytes, void* out, int root) override;
  void barrier() override {}
  std::unique_ptr<Communicator> split(int, int) override;
};

// root's string on every rank (its length first, then its bytes).
std::string broadcast_string(Communicator& comm, const std::string& s, int root);

}  // namespace tessera::dist
