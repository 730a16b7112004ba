// Speculative decoding: proposers guess the next k tokens of a running sequence; the
// engine verifies the guesses with the target model in its next batched step.
//
// A Proposer sees the sequences that are decoding (their tokens so far and sampling
// settings) and fills in, per sequence, up to k proposed tokens and - for proposers that
// sample them - the distribution q each was drawn from. Deterministic proposers (n-gram
// lookup) leave q empty: q is then the point mass on the proposed token. EAGLE/MTP-style
// heads, which read the target's hidden states, would implement the same interface.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/request.h"
#include "models/model.h"
#include "sampling/sampler.h"

namespace tessera {

using TokenProb = Sampler::TokenProb;

// One sequence's share of a proposal round.
struct ProposalSlot {
  const Request* req = nullptr;  // tokens = prompt + generated (all verified)
  const SamplingParams* sampling = nullptr;
  int k = 0;                              // in: most tokens wanted (>= 1)
  std::vector<int32_t> tokens;            // out: proposed tokens, at most k (may be none)
  std::vector<std::vector<TokenProb>> q;  // out: per proposed token its draft distribution,
                                          // or empty (point masses)
};

class Proposer {
 public:
  virtual ~Proposer() = default;
  virtual const char* name() const = 0;
  virtual void propose(std::vector<ProposalSlot>& slots) = 0;
  // The sequence has finished or was preempted: drop what is kept for it.
  virtual void release(uint64_t /*req_id*/) {}
};

// Settings of `--speculative-*` flags.
struct SpeculativeConfig {
  std::string method;       // "": off; "ngram" or "draft"
  std::string draft_model;  // draft: GGUF file or HF directory sharing the target's vocabulary
  int num_speculative_tokens = 0;    // K: most tokens proposed per sequence and step
  int ngram_min = 2, ngram_max = 4;  // n-gram: lengths of the suffix matched (1-gram
                                     // matches are mostly noise)
  // Speculate only while at most this many sequences decode in a step (0: always). A full
  // batch has no compute to spare for verification: on a 2-core CPU a SmolLM2 step of 6
  // tokens costs 2.9x a step of one (bench/spec_compare.sh serve has the measurement).
  int disable_by_batch_size = 4;
  // Per-sequence adaptive k: the length that maximizes expected tokens per second by the
  // measured step costs and the sequence's acceptance (spec/step_cost.h); off: always K.
  bool adaptive = true;
  ModelOptions draft_load;           // how the draft is loaded (threads, quantization, KV type)
  int64_t draft_kv_cache_bytes = 0;  // 0: as many tokens as the target's KV cache
  bool enabled() const { return !method.empty(); }
};

// Largest K accepted: a proposal longer than this only burns compute.
constexpr int kMaxSpeculativeTokens = 32;

// Throws tessera::Error for an unknown method, K out of [1, kMaxSpeculativeTokens],
// a bad n-gram range, or a draft model missing (or given with ngram).
void validate_speculative_config(const SpeculativeConfig& c);

}  // namespace tessera
