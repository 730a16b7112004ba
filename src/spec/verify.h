// Verification of proposed tokens against the target model's logits.
//
// The target ran one forward over [t_last, d_1 .. d_k] of a sequence, giving k + 1 rows of
// logits: row j is the target's next-token distribution after d_1 .. d_j. Each row goes
// through the request's sampler (penalties over the history including d_1 .. d_j, logit
// bias, top-k/top-p/min-p, temperature) to give p_j.
//
//   greedy:   d_j is accepted while it equals argmax p_{j-1}; the first mismatch emits the
//             argmax instead. The output is token-identical to decoding without proposals.
//   sampling: d_j is accepted with probability min(1, p(d_j) / q(d_j)); on rejection a token
//             is drawn from norm(max(0, p - q)) and the round ends. With every proposal
//             accepted, a bonus token is drawn from p_k. Each emitted token then has
//             exactly the distribution of sampling p without proposals (Leviathan et al.,
//             Chen et al. 2023). q is the draft's distribution, or a point mass on d_j for
//             deterministic proposers (accept with probability p(d_j); residual = p without
//             d_j).
#pragma once
#include <cstdint>
#include <vector>

#include "sampling/sampler.h"

namespace tessera {

// rows: [draft.size() + 1, n_vocab] target logits (modified in place). q: one
// distribution per proposed token, or empty for point masses. history: the sequence's
// tokens (prompt + generated) before d_1. Returns the emitted tokens: the accepted
// proposals followed by one correction or bonus token (1 .. k + 1 tokens).
std::vector<int32_t> verify_proposals(Sampler& sampler, float* rows, int n_vocab,
                                      const std::vector<int32_t>& history,
                                      const std::vector<int32_t>& draft,
                                      const std::vector<std::vector<Sampler::TokenProb>>& q);

// One acceptance step of the sampling case, exposed for tests: given target p and draft q
// (q empty: a point mass on d), accepts d (returns d) or draws from the residual. u and
// u2 are uniforms in [0, 1).
int32_t accept_or_resample(const std::vector<Sampler::TokenProb>& p,
                           const std::vector<Sampler::TokenProb>& q, int32_t d, double u, double u2,
                           bool* accepted);

}  // namespace tessera
