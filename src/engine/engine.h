// The serving engine: one engine thread owns the model, the KV cache and the scheduler;
// any thread may submit or abort requests. Results flow back through one RequestStream
// per request (token ids, logprobs, finish reason); detokenization, stop strings and
// HTTP framing happen on the consumer's side.
//
//   submit() --> [input queue] --> engine thread: Scheduler::schedule
//                                                   -> ModelRunner::run (forward + sample)
//                                                   -> update_from_output (finish, push)
//   RequestStream::next() <-- [per-request queue] <--+
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "engine/request.h"
#include "models/model.h"
#include "sampling/sampler.h"
#include "spec/proposer.h"

namespace tessera {

class StepPublisher;

struct EngineConfig {
  int max_num_seqs = 64;             // sequences per step
  int max_num_batched_tokens = 512;  // tokens per step (decodes + prefill chunks)
  int block_size = 16;               // tokens per KV block
  int64_t kv_cache_bytes = 0;        // KV pool size; 0: kv_cache_fraction of available RAM
  double kv_cache_fraction = 0.25;
  int max_model_len = 0;  // prompt + output limit; 0: the model's context (<= 8192)
  bool enable_prefix_caching = true;
  int max_waiting = 256;          // submit() beyond this many queued requests is refused
  SpeculativeConfig speculative;  // off unless speculative.method is set
  // KV bytes one token takes, what kv_cache_bytes is divided by; 0: the whole model's
  // (config().kv_dim()). A distributed server passes the largest rank's share.
  size_t kv_bytes_per_token = 0;
  // Rank 0 of a distributed server: each step's batch goes to the other ranks through it.
  // Not owned. Null: one process.
  StepPublisher* step_publisher = nullptr;
};

// Refusal because the engine is at capacity (HTTP 429) or shutting down (HTTP 503).
class EngineBusy : public Error {
 public:
  EngineBusy(const std::string& msg, bool shutting_down)
      : Error(msg), shutting_down(shutting_down) {}
  bool shutting_down;
};

struct RequestUpdate {
  std::vector<GeneratedToken> tokens;  // new since the previous update
  // A finished status on the request's last update (is_finished); RUNNING before.
  RequestStatus finish = RequestStatus::RUNNING;
  int n_prompt_tokens = 0;
  int n_cached_tokens = 0;  // prompt tokens served by the prefix cache
};

// Consumer end of one request. Thread safe. The request counts as in flight
// (Engine::n_inflight) from submit() until its last update is pushed and the consumer has
// released the stream: a server drains when nothing is left to generate or to write.
// Two holds keep it counted, the engine's (dropped as the last update is pushed, before
// the consumer can see it) and the consumer's (dropped when the last copy of the pointer
// submit() returned is released), so a client that has read the end and let the stream go
// finds the request no longer counted, whenever the engine thread lets go of its copy.
class RequestStream {
 public:
  RequestStream(uint64_t id, std::shared_ptr<std::atomic<int>> inflight)
      : id_(id), inflight_(std::move(inflight)) {
    ++*inflight_;
  }
  ~RequestStream() {
    while (holds_.load() > 0) drop_hold();  // a stream never finished (engine shut down)
  }
  // The consumer's pointer to `s`: releasing its last copy drops the consumer's hold.
  static std::shared_ptr<RequestStream> consumer_handle(std::shared_ptr<RequestStream> s);
  RequestStream(const RequestStream&) = delete;
  RequestStream& operator=(const RequestStream&) = delete;
  uint64_t id() const { return id_; }
  // Waits up to `timeout` for updates; merges everything pending into `out`.
  // Returns false on timeout with nothing pending.
  bool next(RequestUpdate& out, std::chrono::milliseconds timeout);
  void push(RequestUpdate u);  // engine side

 private:
  void drop_hold() {
    if (holds_.fetch_sub(1) == 1) --*inflight_;
  }

  uint64_t id_;
  std::shared_ptr<std::atomic<int>> inflight_;
  std::atomic<int> holds_{2};       // the engine's and the consumer's
  std::atomic<bool> ended_{false};  // the last update was pushed
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<RequestUpdate> queue_;
};

struct EngineMetrics {
  int n_running = 0, n_waiting = 0;
  int kv_blocks_used = 0, kv_blocks_total = 0, block_size = 0;
  int64_t prefix_query_tokens = 0, prefix_hit_tokens = 0;
  int64_t prompt_tokens_total = 0, generation_tokens_total = 0;
  int64_t requests_finished = 0, preemptions_total = 0, steps_total = 0;
  // Speculative decoding (zero when off): proposed tokens verified, of them accepted,
  // verifications (sequence-steps with proposals) and the tokens those emitted.
  bool spec_enabled = false;
  int64_t spec_proposed = 0, spec_accepted = 0, spec_rounds = 0, spec_emitted = 0;
};

class Engine {
 public:
  Engine(Model& model, const EngineConfig& cfg);  // sizes the KV pool, starts the thread
  ~Engine();                                      // aborts what is left and joins
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Thread safe. Throws Error for an invalid request (empty prompt, too long, bad token
  // ids) and EngineBusy when the waiting queue is full or the engine is shutting down.
  std::shared_ptr<RequestStream> submit(std::vector<int32_t> prompt, const GenerateParams& p);
  // Several requests (one GenerateParams each), admitted all or none: EngineBusy when the
  // waiting queue cannot take them all now, and then none of them holds a slot.
  std::vector<std::shared_ptr<RequestStream>> submit_all(std::vector<std::vector<int32_t>> prompts,
                                                         const std::vector<GenerateParams>& params);
  // Thread safe; the stream receives a final update with FINISHED_ABORTED (if it was
  // still running). Unknown or finished ids are ignored.
  void abort(uint64_t id);
  // Thread safe: aborts every request submitted so far (shutdown).
  void abort_all();

  // Offline batch generation (like vLLM's LLM.generate): every prompt with the same
  // parameters, run concurrently; results in prompt order.
  struct Result {
    std::vector<GeneratedToken> tokens;
    RequestStatus finish = RequestStatus::RUNNING;
    int n_prompt_tokens = 0, n_cached_tokens = 0;
  };
  std::vector<Result> generate(const std::vector<std::vector<int32_t>>& prompts,
                               const GenerateParams& p);

  // Stop accepting new requests (submit throws EngineBusy with shutting_down).
  void stop_accepting() { accepting_ = false; }
  // Requests submitted whose stream is still held (see RequestStream).
  int n_inflight() const { return n_inflight_->load(); }
  // The most requests that can ever be in the engine at once (running + waiting): a group
  // larger than this can never be admitted.
  int capacity() const { return cfg_.max_num_seqs + cfg_.max_waiting; }

  EngineMetrics metrics() const;
  int max_model_len() const { return max_model_len_; }
  const Model& model() const { return model_; }
  const EngineConfig& config() const { return cfg_; }

 private:
  struct Impl;
  void loop();
  // Throws Error when the request could never run (empty, too long, bad token ids).
  void check_request(const std::vector<int32_t>& prompt, const GenerateParams& p) const;

  Model& model_;
  EngineConfig cfg_;
  int max_model_len_ = 0;
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> accepting_{true};
  std::shared_ptr<std::atomic<int>> n_inflight_ = std::make_shared<std::atomic<int>>(0);
  std::thread thread_;
};

}  // namespace tessera
