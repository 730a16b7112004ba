#include "spec/step_cost.h"

#include <algorithm>
#include <cmath>

namespace tessera {

void StepCostModel::observe(int n_tokens, double seconds) {
  if (n_tokens < 1 || n_tokens > kMaxTokens || !(seconds > 0.0)) return;
  double& e = ema_[n_tokens];
  e = e > 0.0 ? 0.8 * e + 0.2 * seconds : seconds;
}

double StepCostModel::cost(int n_tokens) const {
  n_tokens = std::clamp(n_tokens, 1, kMaxTokens);
  if (ema_[n_tokens] > 0.0) return ema_[n_tokens];
  double below = -1.0;
  for (int m = 1; m < n_tokens; ++m) below = std::max(below, ema_[m] > 0.0 ? ema_[m] : -1.0);
  return below;
}

int StepCostModel::best_k(double alpha, int k_max, int b) const {
  b = std::max(b, 1);
  const double base = cost(b);
  if (base <= 0.0) return -1;
  alpha = std::clamp(alpha, 0.0, 0.999);
  int best = 0;
  double best_rate = b / base;
  double emitted = 1.0, power = 1.0;  // E(k), alpha^k
  for (int k = 1; k <= k_max && b * (1 + k) <= kMaxTokens; ++k) {
    power *= alpha;
    emitted += power;
    const double rate = b * emitted / cost(b * (1 + k));
    // Strictly better by 2%: the measurements are noisy, and a tie costs KV writes.
    if (rate > best_rate * 1.02) best = k, best_rate = rate;
  }
  return best;
}

}  // namespace tessera
