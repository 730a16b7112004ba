// The engine's side of speculative decoding: before a step, asks the proposer for up to
// k tokens per decoding sequence (k adapted per sequence to its recent acceptance, and
// no speculation while the batch is larger than --speculative-disable-by-batch-size);
// after the step, verifies each sequence's proposals against the k + 1 rows of target
// logits and rolls the KV cache back past the last accepted token.
//
//   before:  tokens = [... t_last]            n_computed = n - 1   spec_tokens = d_1..d_k
//   step:    forward over t_last, d_1..d_k    (k + 1 logit rows, K/V written for all)
//   after:   tokens = [... t_last d_1..d_a x] n_computed = n + a   (x: correction/bonus)
//            blocks past position n + a - 1 released (KVCacheManager::rollback)
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "engine/kv_manager.h"
#include "spec/proposer.h"
#include "spec/step_cost.h"

namespace tessera {

struct SpeculativeMetrics {
  int64_t proposed = 0;       // proposed tokens verified
  int64_t accepted = 0;       // of those, accepted
  int64_t rounds = 0;         // verifications (sequence-steps with >= 1 proposal)
  int64_t emitted = 0;        // tokens emitted by those verifications (accepted + 1 each)
  int64_t skipped_batch = 0;  // steps without speculation because the batch was too large
};

class Speculator {
 public:
  // Builds the proposer (loads and checks the draft model). Throws tessera::Error for a
  // bad configuration, another vocabulary, or a draft that does not fit memory.
  Speculator(const SpeculativeConfig& cfg, Model& target, int n_kv_tokens, int block_size,
             int max_batch_tokens);
  ~Speculator();

  const SpeculativeConfig& config() const { return cfg_; }

  struct Candidate {
    Request* req;
    const SamplingParams* sampling;
    int max_k;  // room left: max_tokens, context length
  };
  // Sets req->spec_tokens for the candidates (decoding sequences); n_decoding: sequences
  // decoding this step (for the batch-size cut-off).
  void propose(const std::vector<Candidate>& cands, int n_decoding);

  // Verifies r.spec_tokens against rows ([k + 1, n_vocab], modified in place); returns the
  // tokens to emit (accepted proposals, then one more). Does not touch r.tokens.
  std::vector<int32_t> verify(Request& r, Sampler& sampler, float* rows, int n_vocab);

  // After r.tokens got the emitted tokens: K/V rollback of the rejected proposals.
  static void commit(KVCacheManager& kvm, Request& r);

  // An engine step of n_tokens took `seconds` (proposing and running the model): the
  // measurements adaptive k weighs proposals against (spec/step_cost.h).
  void observe_step(int n_tokens, double seconds) { cost_.observe(n_tokens, seconds); }

  void release(uint64_t req_id);
  SpeculativeMetrics metrics() const;

 private:
  struct SeqState {
    // Recent per-token acceptance: accepted proposals over acceptance trials (each
    // accepted proposal, and the first rejected one), decayed; starts at 1/2.
    double succ = 1.0, trials = 2.0;
    int pause = 0;       // decode steps left without proposals
    int backoff = 8;     // length of the next pause (kPauseSteps, doubling)
    bool probe = false;  // after the pause: propose one token to measure acceptance again
    bool draft = true;   // draft method: the sequence began decoding where speculation ran
  };
  StepCostModel cost_;
  SpeculativeConfig cfg_;
  std::unique_ptr<Proposer> proposer_;
  std::unordered_map<uint64_t, SeqState> seqs_;
  std::unordered_map<uint64_t, std::vector<std::vector<TokenProb>>> q_;  // draft q per seq
  std::vector<ProposalSlot> slots_;
  mutable std::mutex mu_;
  SpeculativeMetrics m_;
};

}  // namespace tessera
