// How many tokens to propose: measured step costs against expected acceptance.
//
// Speculation pays only when the tokens a step emits grow faster than its cost. A step of
// n tokens costs about the same as a step of one where decode is bound by reading the
// weights (a GPU, a CPU with bandwidth to spare), but up to n times as much where it is
// bound by compute (a 2-core CPU: a SmolLM2 step of 6 tokens costs 2.9x a step of one).
// So the engine measures: StepCostModel keeps the recent wall time of steps by their
// token count, and best_k picks the proposal length that maximizes expected emitted
// tokens per second, given a sequence's per-token acceptance rate alpha:
//
//   E(k) = 1 + alpha + ... + alpha^k = (1 - alpha^(k+1)) / (1 - alpha)   tokens emitted
//   rate(k) = b * E(k) / cost(b * (1 + k))        b sequences proposing k each
//
// k = 0 (no proposal) wins when no k beats b / cost(b). Sizes never measured are assumed
// to cost what the largest measured smaller size costs: optimistic, so they get tried,
// and measured from then on.
#pragma once
#include <array>

namespace tessera {

class StepCostModel {
 public:
  static constexpr int kMaxTokens = 128;  // steps larger than this are not recorded

  // A step of n tokens (proposals, decode and prefill tokens together) took `seconds`.
  void observe(int n_tokens, double seconds);
  // Estimated seconds of an n-token step; < 0 when nothing at or below n was measured.
  double cost(int n_tokens) const;
  // The k in [0, k_max] maximizing expected tokens per second for b sequences that
  // propose k tokens each at acceptance alpha; -1 when cost(b) is not known yet.
  int best_k(double alpha, int k_max, int b) const;

 private:
  std::array<double, kMaxTokens + 1> ema_{};  // 0: not measured
};

}  // namespace tessera
