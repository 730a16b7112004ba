// One generated sequence under a grammar, as the engine uses it: the next token's mask is
// computed on a worker thread as soon as the previous token is accepted, so it runs beside
// the next forward pass instead of after it; sampling waits for it only if it is late.
//
//   step t:   forward -> apply(logits) -> sample -> accept(token) -> prefetch()
//                                                                      |  worker: fill_mask
//   step t+1: forward (overlaps the worker) -> apply(logits) waits for the mask -> ...
#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "structured/token_mask.h"

namespace tessera::structured {

// Background threads for mask work, shared by every sequence of an engine.
class MaskWorker {
 public:
  explicit MaskWorker(int n_threads = 2);
  ~MaskWorker();
  MaskWorker(const MaskWorker&) = delete;
  MaskWorker& operator=(const MaskWorker&) = delete;
  std::future<void> submit(std::function<void()> job);

 private:
  void run();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::packaged_task<void()>> jobs_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

class SequenceGrammar {
 public:
  SequenceGrammar(std::shared_ptr<const CompiledGrammar> g, MaskWorker* worker);
  ~SequenceGrammar();  // waits for a pending mask

  // Starts computing the mask for the next token (on the worker; inline without one).
  void prefetch();
  // Sets the logits of disallowed tokens to -inf (waiting for the mask). Returns how many
  // tokens are allowed (0: nothing can follow; the caller ends the sequence).
  int apply(float* logits, int n_vocab);
  // Masks `logits` and draws the next token with `draw` (the request's sampler, which may
  // change the logits it is given). `budget` > 0: the tokens left to the sequence, this one
  // included; near its end the token drawn must leave the grammar completable in budget - 1
  // tokens, so that a document is closed rather than cut at max_tokens. A drawn token
  // that does not fit is excluded and the draw repeated (sampling from the tokens that
  // fit); after a few misses, fit_budget narrows the choice. Returns -1 when the grammar
  // allows nothing (the caller ends the sequence).
  int32_t sample(float* logits, int n_vocab, int budget,
                 const std::function<int32_t(float*)>& draw);
  // Advances by the sampled token; false when the grammar rejects it (state unchanged).
  bool accept(int32_t token);
  // The grammar is complete: nothing may follow.
  bool complete() const { return matcher_.complete(); }
  bool accepting() const { return matcher_.accepting(); }
  GrammarMatcher& matcher() { return matcher_; }

  // Cumulative seconds spent computing masks (for benchmarks).
  double mask_seconds() const { return mask_seconds_; }
  int n_masks() const { return n_masks_; }

 private:
  void wait();
  bool near_budget_end(int budget);
  bool fits(int32_t token, int budget);
  int fit_budget(float* logits, int n_vocab, int budget);
  GrammarMatcher matcher_;
  MaskWorker* worker_;
  TokenBitmask mask_;
  std::vector<int32_t> cand_, singles_;  // fit_budget scratch
  std::vector<float> masked_;            // sample: the masked logits, for another draw
  std::future<void> pending_;
  bool ready_ = false;
  double mask_seconds_ = 0.0;
  int n_masks_ = 0;
};

}  // namespace tessera::structured
