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

namespace tessera {

// Ordered lifecycle: finished states compare greater than every live state.
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

  int n_tokens() const { return static_cast<int>(tokens.size()); }
  int n_output() const { return n_tokens() - n_prompt; }
};

}  // namespace tessera
