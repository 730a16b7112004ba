// Serving across processes (tensor parallelism under mpirun), at the model runner's
// boundary. Rank 0 runs the whole engine; its ModelRunner hands every batch to a
// StepPublisher before the model runs it, and the other ranks run run_step_worker(): they
// rebuild the same chunks from the step message and call ModelRunner::forward, so every
// rank calls Model::forward with the same batch in step (dist/step_channel.h). Block ids
// are rank 0's: each worker's KV cache has as many blocks as rank 0's pool, and a block
// table names the same blocks on every rank (prefix caching and preemption only change
// the tables, so they need nothing more). The logits every rank computes are discarded
// on the workers; rank 0 samples.
//
// A bounded step: rank 0 arms a watchdog from the moment it sends a step until its forward
// pass returns, a worker from receiving a step until its pass returns (with twice the
// timeout, so that rank 0 reports first); a step that takes longer ends the job with an
// error naming the rank that waited. An idle worker waits for the next step unbounded.
#pragma once
#include <atomic>
#include <memory>
#include <vector>

#include "dist/step_channel.h"
#include "dist/watchdog.h"
#include "engine/model_runner.h"

namespace tessera {

// The message of one batch: per chunk its new tokens, the block table entries that
// positions [0, start + n_new) use, and its logits range.
dist::StepMessage step_message(const std::vector<SeqChunk>& chunks, int block_size);

// The chunks of a message, their tokens and tables pointing into `m` and `tokens` (per
// chunk, start + n_new tokens of which [start, start + n_new) are set). Throws Error when
// a chunk names a block outside [0, n_blocks) or its table does not cover its positions.
std::vector<SeqChunk> step_chunks(const dist::StepMessage& m, int block_size, int n_blocks,
                                  std::vector<std::vector<int32_t>>& tokens);

class StepPublisher {
 public:
  // timeout_s: the longest a step may take (--dist-timeout).
  StepPublisher(dist::StepChannel& channel, int block_size, double timeout_s);

  // Before the forward pass of `chunks` on rank 0: sends them and arms the watchdog.
  void publish(const std::vector<SeqChunk>& chunks);
  // After the pass returned.
  void done();
  // Seconds the step in flight has run so far (0: none is), and the longest a step took.
  // Thread safe: for a report while the engine thread waits in a step.
  double in_flight_s() const;
  double longest_step_s() const;
  // The pass threw on rank 0 after the workers were told to run it: they are in its
  // collectives, so the job ends (every rank) with `what`.
  [[noreturn]] void failed(const char* what);
  // The workers return from run_step_worker (once; later calls do nothing). Called after
  // the engine has stopped; on an error rank 0 ends the job (dist::abort) instead.
  void stop();

 private:
  dist::StepChannel& channel_;
  int block_size_;
  dist::Watchdog watchdog_;
  bool stopped_ = false;
  std::atomic<int64_t> started_ns_{0};  // steady clock of the step in flight; 0: none
  std::atomic<int64_t> longest_ns_{0};
};

// The loop of a rank other than 0: receive a step, run it, until STOP. `kv` has rank 0's
// number of blocks of `block_size` tokens. A failure (a malformed message, the model
// throwing) ends the job with an error, since rank 0 waits in the step's collectives.
void run_step_worker(Model& model, KVCache& kv, int n_blocks, int block_size,
                     dist::StepChannel& channel, double timeout_s);

}  // namespace tessera
