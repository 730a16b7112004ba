// Step messages over MPI: a communicator of their own (a duplicate of MPI_COMM_WORLD, so
// they never match the model's collectives), a non-blocking broadcast of the length and a
// blocking one of the words. A rank waiting for the next step polls the first broadcast:
// it spins for kSpin (the gap between the steps of a busy server is well under it), then
// sleeps between polls, up to kMaxSleep, so the workers of an idle server use no CPU and
// the first step after an idle spell starts at most kMaxSleep late.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "core/error.h"
#include "dist/communicator.h"
#include "dist/runtime.h"
#include "dist/step_channel.h"

namespace tessera::dist {

namespace {

constexpr auto kSpin = std::chrono::milliseconds(5);
constexpr auto kMaxSleep = std::chrono::microseconds(1000);

class MpiStepChannel final : public StepChannel {
 public:
  // Collective. The duplicate is not freed (MPI_Comm_free is collective too, and a rank
  // that ends on an error would leave the others waiting in it): MPI_Finalize frees it.
  MpiStepChannel() { MPI_Comm_dup(MPI_COMM_WORLD, &comm_); }

  void send(const StepMessage& m) override {
    std::vector<int32_t> w = m.serialize();
    int64_t n = static_cast<int64_t>(w.size());
    MPI_Request req;
    MPI_Ibcast(&n, 1, MPI_INT64_T, 0, comm_, &req);
    MPI_Wait(&req, MPI_STATUS_IGNORE);
    MPI_Bcast(w.data(), static_cast<int>(n), MPI_INT32_T, 0, comm_);
  }

  StepMessage receive() override {
    int64_t n = 0;
    MPI_Request req;
    MPI_Ibcast(&n, 1, MPI_INT64_T, 0, comm_, &req);
    const auto t0 = std::chrono::steady_clock::now();
    auto sleep = std::chrono::microseconds(20);
    for (int done = 0;;) {
      MPI_Test(&req, &done, MPI_STATUS_IGNORE);
      if (done) break;
      if (std::chrono::steady_clock::now() - t0 < kSpin) continue;
      std::this_thread::sleep_for(sleep);
      sleep = std::min(sleep * 2, std::chrono::duration_cast<std::chrono::microseconds>(kMaxSleep));
    }
    if (n < 3 || n > (int64_t{1} << 28)) throw Error("step message of a bad length");
    words_.resize(static_cast<size_t>(n));
    MPI_Bcast(words_.data(), static_cast<int>(n), MPI_INT32_T, 0, comm_);
    return StepMessage::parse(words_.data(), words_.size());
  }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  std::vector<int32_t> words_;
};

}  // namespace

std::unique_ptr<StepChannel> open_step_channel(Communicator& comm) {
  if (!started() || &comm != &world(false)) return make_step_channel(comm);
  return std::make_unique<MpiStepChannel>();
}

}  // namespace tessera::dist
