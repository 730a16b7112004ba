// A generation request as the engine thread sees it. Progress is counted, not phased:
// the request's tokens are its prompt followed by what it generated, and n_computed of
// them have their K/V in the cache. Prefill, chunked prefill, prefix-cache hits and
// decode are all "compute tokens [n_computed, n_tokens())" under a token budget.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "kv/block_pool.h"
#include "sampling/sampler.h"

namespace tessera::structured {
class CompiledGrammar;
class SequenceGrammar;
}  // namespace tessera::structured

namespace tessera {

// The one lifecycle of a request, ordered: finished states compare greater than every
// live state. Consumers see it too: an update's status is finished on the last update.
enum class RequestStatus : uint8_t {
  WAITING,
  RUNNING,
  PREEMPTED,
  FINISHED_STOPPED,  // end-of-generation token (or a stop string, decided by the caller)
  FINISHED_LENGTH,   // max_tokens or the context length reached
  FINISHED_ABORTED,  // cancelled by the client
};
inline bool is_finished(RequestStatus s) {
  return s >= RequestStatus::FINISHED_STOPPED;
}
// OpenAI's finish_reason of a finished status: "stop", "length", "abort"; null otherwise.
const char* finish_reason_text(RequestStatus s);

struct GenerateParams {
  SamplingParams sampling;
  int max_tokens = 16;
  bool ignore_eos = false;
  int logprobs = -1;  // -1: none; 0: the chosen token's; k > 0: also the top k (k <= 20)
  // More tokens that end generation like end-of-generation tokens do (finish "stop", the
  // token not reported), even with ignore_eos.
  std::vector<int32_t> stop_token_ids;
  // Output constraint: only tokens the grammar allows are sampled; end-of-generation only
  // where the grammar is complete, and generation ends (finish "stop") once nothing may
  // follow. Null: unconstrained.
  std::shared_ptr<const structured::CompiledGrammar> grammar;
};

struct TokenLogprob {
  int32_t token;
  float logprob;
};

struct GeneratedToken {
  int32_t token;
  float logprob = 0.0f;           // of the chosen token (when logprobs >= 0)
  int32_t rank = 0;               // 1 + tokens more likely than the chosen one (logprobs >= 0)
  std::vector<TokenLogprob> top;  // k most likely, most likely first (when logprobs > 0)
};

struct Request {
  uint64_t id = 0;
  std::vector<int32_t> tokens;  // prompt, then generated tokens
  int n_prompt = 0;
  int n_computed = 0;        // tokens whose K/V are in the cache
  int n_cached_prompt = -1;  // prompt tokens served by the prefix cache (-1: not yet looked up)
  int max_tokens = 16;       // generated tokens allowed
  RequestStatus status = RequestStatus::WAITING;
  int n_preemptions = 0;

  // Proposed tokens (speculative decoding) to verify after tokens.back() in the next step;
  // never part of `tokens` until accepted, so hashes and the prefix cache see only
  // verified tokens. Cleared by the scheduler when it cannot fit them.
  std::vector<int32_t> spec_tokens;

  std::vector<int32_t> blocks;          // block table: logical block i -> physical block
  std::vector<BlockHash> block_hashes;  // hashes of the full blocks of `tokens` so far

  // Sampling state, read by the model runner; null for a request that is not sampled.
  GenerateParams params;
  std::unique_ptr<Sampler> sampler;
  // The grammar state when params.grammar is set (its mask is applied before sampling).
  std::shared_ptr<structured::SequenceGrammar> grammar;

  int n_tokens() const { return static_cast<int>(tokens.size()); }
  int n_output() const { return n_tokens() - n_prompt; }
};

}  // namespace tessera
