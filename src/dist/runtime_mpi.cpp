// The runtime of a build with MPI: MPI_COMM_WORLD as the communicator of the run (and its
// sub-groups, MPI_Comm_split), and the one place that starts and ends MPI.
#include <mpi.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "dist/runtime.h"

namespace tessera::dist {

namespace {

// Sums above this many floats per rank go through a reduce-scatter (each rank sums one
// slice) and an all-gather; below it, every rank gathers all partial vectors and sums
// them itself (one collective: what decode steps, a few KiB, want). Both sum each element
// in rank order, so they give the same bits.
constexpr int64_t kGatherSumMax = 1 << 14;
// MPI counts are ints: longer vectors go in pieces.
constexpr int64_t kPieceMax = int64_t{1} << 28;

class MpiCommunicator final : public Communicator {
 public:
  // A communicator over `comm`; `owned`: one of split()'s, freed with this object.
  explicit MpiCommunicator(MPI_Comm comm, bool owned = false) : comm_(comm), owned_(owned) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiCommunicator() override {
    int done = 0;
    MPI_Finalized(&done);
    if (owned_ && !done) MPI_Comm_free(&comm_);
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void all_reduce_sum(float* x, int64_t n) override {
    if (size_ == 1) return;
    for (int64_t done = 0; done < n; done += kPieceMax) {
      const int m = static_cast<int>(std::min(kPieceMax, n - done));
      if (m <= kGatherSumMax)
        gather_sum(x + done, m);
      else
        scatter_sum(x + done, m);
    }
  }

  void all_gather(const float* in, int64_t n, float* out) override {
    if (n > kPieceMax / size_) throw Error("all-gather of more than 1 GiB");
    MPI_Allgather(in, static_cast<int>(n), MPI_FLOAT, out, static_cast<int>(n), MPI_FLOAT, comm_);
  }

  void broadcast(void* data, int64_t n_bytes, int root) override {
    auto* p = static_cast<char*>(data);
    for (int64_t done = 0; done < n_bytes; done += kPieceMax)
      MPI_Bcast(p + done, static_cast<int>(std::min(kPieceMax, n_bytes - done)), MPI_BYTE, root,
                comm_);
  }

  void gather(const void* in, int64_t n_bytes, void* out, int root) override {
    if (n_bytes > kPieceMax) throw Error("gather of more than 256 MiB per rank");
    MPI_Gather(in, static_cast<int>(n_bytes), MPI_BYTE, out, static_cast<int>(n_bytes), MPI_BYTE,
               root, comm_);
  }

  void barrier() override { MPI_Barrier(comm_); }

  std::unique_ptr<Communicator> split(int color, int key) override {
    MPI_Comm sub = MPI_COMM_NULL;
    if (MPI_Comm_split(comm_, color, key, &sub) != MPI_SUCCESS || sub == MPI_COMM_NULL)
      throw Error("MPI_Comm_split failed");
    return std::make_unique<MpiCommunicator>(sub, /*owned=*/true);
  }

  // Blocking standard-mode sends: small messages go eagerly (the call returns at once),
  // large ones once dest has posted the matching receive.
  void send(const void* data, int64_t n_bytes, int dest, int tag) override {
    const auto* p = static_cast<const char*>(data);
    for (int64_t done = 0; done < n_bytes; done += kPieceMax)
      MPI_Send(p + done, static_cast<int>(std::min(kPieceMax, n_bytes - done)), MPI_BYTE, dest, tag,
               comm_);
  }

  void recv(void* data, int64_t n_bytes, int src, int tag) override {
    auto* p = static_cast<char*>(data);
    for (int64_t done = 0; done < n_bytes; done += kPieceMax)
      MPI_Recv(p + done, static_cast<int>(std::min(kPieceMax, n_bytes - done)), MPI_BYTE, src, tag,
               comm_, MPI_STATUS_IGNORE);
  }

 private:
  // Every rank gets all partials [size, m] and sums them in rank order.
  void gather_sum(float* x, int m) {
    scratch_.resize(static_cast<size_t>(size_) * m);
    MPI_Allgather(x, m, MPI_FLOAT, scratch_.data(), m, MPI_FLOAT, comm_);
    for (int i = 0; i < m; ++i) {
      float s = scratch_[i];
      for (int r = 1; r < size_; ++r) s += scratch_[static_cast<size_t>(r) * m + i];
      x[i] = s;
    }
  }

  // Slice r of x (counts_[r] floats at displs_[r]) is summed by rank r from every rank's
  // partial (an all-to-all), then every rank gathers all slices.
  void scatter_sum(float* x, int m) {
    counts_.resize(size_);
    displs_.resize(size_);
    for (int r = 0; r < size_; ++r) {
      displs_[r] = static_cast<int>(int64_t{m} * r / size_);
      counts_[r] = static_cast<int>(int64_t{m} * (r + 1) / size_) - displs_[r];
    }
    const int mine = counts_[rank_];
    recv_counts_.assign(size_, mine);
    recv_displs_.resize(size_);
    for (int r = 0; r < size_; ++r) recv_displs_[r] = r * mine;
    scratch_.resize(static_cast<size_t>(size_) * mine);
    MPI_Alltoallv(x, counts_.data(), displs_.data(), MPI_FLOAT, scratch_.data(),
                  recv_counts_.data(), recv_displs_.data(), MPI_FLOAT, comm_);
    float* slice = x + displs_[rank_];
    for (int i = 0; i < mine; ++i) {
      float s = scratch_[i];
      for (int r = 1; r < size_; ++r) s += scratch_[static_cast<size_t>(r) * mine + i];
      slice[i] = s;
    }
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x, counts_.data(), displs_.data(), MPI_FLOAT,
                   comm_);
  }

  MPI_Comm comm_;
  bool owned_ = false;
  int rank_ = 0, size_ = 1;
  std::vector<float> scratch_;
  std::vector<int> counts_, displs_, recv_counts_, recv_displs_;
};

// State of the process (one MPI per process).
struct Runtime {
  bool mpi_started = false;
  bool finalized = false;
  std::unique_ptr<Communicator> world;
};

Runtime& runtime() {
  static Runtime r;
  return r;
}

}  // namespace

bool mpi_compiled_in() {
  return true;
}

bool launched_by_mpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr;
}

Communicator& world(bool want_parallel) {
  Runtime& rt = runtime();
  if (!rt.world) {
    if (launched_by_mpirun()) {
      int provided = MPI_THREAD_SINGLE;
      if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
        throw Error("MPI_Init_thread failed");
      rt.mpi_started = true;
      if (provided < MPI_THREAD_SERIALIZED)
        throw CollectiveError("this MPI library does not allow calls from more than one thread");
      rt.world = std::make_unique<MpiCommunicator>(MPI_COMM_WORLD);
    } else {
      rt.world = std::make_unique<LocalCommunicator>();
    }
  }
  if (want_parallel && !rt.mpi_started)
    throw Error("running on more than one process needs mpirun: mpirun -np N tessera ...");
  return *rt.world;
}

bool started() {
  return runtime().mpi_started;
}

int world_rank() {
  const Runtime& rt = runtime();
  return rt.mpi_started && !rt.finalized && rt.world ? rt.world->rank() : 0;
}

void finalize() {
  Runtime& rt = runtime();
  if (!rt.mpi_started || rt.finalized) return;
  rt.world.reset();
  MPI_Finalize();
  rt.finalized = true;
}

void abort(int code) {
  Runtime& rt = runtime();
  if (rt.mpi_started && !rt.finalized) MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

}  // namespace tessera::dist
