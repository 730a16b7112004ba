// The embedding batcher: one thread that owns an EmbeddingRunner and turns the inputs of
// every waiting request into packed forward passes.
//
//   submit(inputs) --> [waiting inputs, FIFO] --> batcher thread: take inputs while the
//                                                 pass stays within max_batch_tokens and
//                                                 max_batch_seqs -> run -> results
//   EmbedJob::wait() <-- results, per request, in input order <--+
//
// A request's inputs may be spread over several passes and share a pass with other
// requests' inputs; packing (no padding) makes a vector independent of its batch mates.
// Admission is all-or-nothing: a request whose inputs do not fit in the waiting room is
// refused (EngineBusy), never admitted in part.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "embed/embedding.h"

namespace tessera {

// One request's inputs and, once done, their outputs. Thread safe.
class EmbedJob {
 public:
  explicit EmbedJob(std::vector<EmbedInput> inputs);
  // Waits up to `timeout`; true when every output is there (or the job failed).
  bool wait(std::chrono::milliseconds timeout);
  // After wait() returned true: the outputs in input order, or the error that failed them
  // ("" when none).
  const std::vector<std::vector<float>>& outputs() const { return outputs_; }
  const std::string& error() const { return error_; }
  const std::vector<EmbedInput>& inputs() const { return inputs_; }
  int n_tokens() const { return n_tokens_; }  // over all inputs

 private:
  friend class EmbedBatcher;
  void set_output(size_t i, std::vector<float> v);
  void fail(const std::string& message);
  void count_done();

  std::vector<EmbedInput> inputs_;
  std::vector<std::vector<float>> outputs_;
  int n_tokens_ = 0;
  size_t n_done_ = 0;
  bool done_ = false;
  std::string error_;
  std::atomic<int>* inflight_ = nullptr;  // the batcher's count of unfinished requests
  std::mutex mu_;
  std::condition_variable cv_;
};

struct EmbedBatcherStats {
  int64_t requests = 0, inputs = 0, tokens = 0, batches = 0;
  int waiting_inputs = 0;
};

class EmbedBatcher {
 public:
  // Starts the batcher thread. max_waiting_inputs: inputs queued at once, over all requests.
  EmbedBatcher(EmbeddingRunner& runner, int max_waiting_inputs);
  ~EmbedBatcher();  // fails what is still waiting and joins the thread
  EmbedBatcher(const EmbedBatcher&) = delete;
  EmbedBatcher& operator=(const EmbedBatcher&) = delete;

  // Queues a request's inputs (each must pass runner.check()). Thread safe. Throws
  // EngineBusy when they do not fit in the waiting room now, or when stopping; a request
  // of more than max_waiting_inputs() inputs never fits (callers refuse it up front).
  std::shared_ptr<EmbedJob> submit(std::vector<EmbedInput> inputs);
  void stop_accepting() { accepting_ = false; }
  int max_waiting_inputs() const { return max_waiting_; }
  int n_inflight() const { return n_inflight_.load(); }  // requests not yet finished
  const EmbeddingRunner& runner() const { return runner_; }
  EmbedBatcherStats stats() const;

 private:
  struct Item {
    std::shared_ptr<EmbedJob> job;
    size_t index;
  };
  void loop();

  EmbeddingRunner& runner_;
  const int max_waiting_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> waiting_;
  bool stop_ = false;
  std::atomic<bool> accepting_{true};
  std::atomic<int> n_inflight_{0};
  EmbedBatcherStats stats_;
  std::thread thread_;
};

}  // namespace tessera
