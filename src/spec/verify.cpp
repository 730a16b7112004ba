#include "spec/verify.h"

#include <algorithm>
#include <unordered_map>

namespace tessera {

namespace {

float prob_of(const std::vector<Sampler::TokenProb>& d, int32_t id) {
  for (const auto& t : d)
    if (t.id == id) return t.p;
  return 0.0f;
}

// A draw from `d` (probabilities summing to ~1) with uniform u.
int32_t draw(const std::vector<Sampler::TokenProb>& d, double u) {
  double cum = 0.0;
  for (const auto& t : d) {
    cum += t.p;
    if (u < cum) return t.id;
  }
  return d.back().id;
}

}  // namespace

int32_t accept_or_resample(const std::vector<Sampler::TokenProb>& p,
                           const std::vector<Sampler::TokenProb>& q, int32_t d, double u, double u2,
                           bool* accepted) {
  const double pd = prob_of(p, d);
  const double qd = q.empty() ? 1.0 : prob_of(q, d);
  // Accept with probability min(1, p/q); q(d) > 0 since d was drawn from q.
  if (qd > 0.0 && u * qd < pd) {
    *accepted = true;
    return d;
  }
  *accepted = false;
  // Residual max(0, p - q), normalized. Tokens outside p's support have residual 0.
  std::vector<Sampler::TokenProb> r;
  r.reserve(p.size());
  double sum = 0.0;
  if (q.empty()) {
    for (const auto& t : p)
      if (t.id != d && t.p > 0.0f) {
        r.push_back(t);
        sum += t.p;
      }
  } else {
    std::unordered_map<int32_t, float> qm;
    qm.reserve(q.size() * 2);
    for (const auto& t : q) qm[t.id] = t.p;
    for (const auto& t : p) {
      auto it = qm.find(t.id);
      const float diff = t.p - (it == qm.end() ? 0.0f : it->second);
      if (diff > 0.0f) {
        r.push_back({t.id, diff});
        sum += diff;
      }
    }
  }
  // sum == 0 only when p == q up to rounding, where rejection has probability ~0: draw
  // from p itself.
  if (sum <= 0.0) return draw(p, u2);
  return draw(r, u2 * sum);
}

std::vector<int32_t> verify_proposals(Sampler& sampler, float* rows, int n_vocab,
                                      const std::vector<int32_t>& history,
                                      const std::vector<int32_t>& draft,
                                      const std::vector<std::vector<Sampler::TokenProb>>& q) {
  std::vector<int32_t> out;
  std::vector<int32_t> hist = history;  // grows with each accepted proposal (penalties)
  const size_t k = draft.size();
  if (sampler.greedy()) {
    for (size_t j = 0; j <= k; ++j) {
      const int32_t t = sampler.sample(rows + j * static_cast<size_t>(n_vocab), hist);
      out.push_back(t);
      if (j == k || t != draft[j]) break;
      hist.push_back(t);
    }
    return out;
  }
  static const std::vector<Sampler::TokenProb> kPointMass;
  std::vector<Sampler::TokenProb> p;
  for (size_t j = 0; j < k; ++j) {
    sampler.distribution(rows + j * static_cast<size_t>(n_vocab), hist, p);
    const double u = sampler.uniform();
    bool accepted = false;
    const double u2 = sampler.uniform();
    const int32_t t =
        accept_or_resample(p, q.empty() ? kPointMass : q[j], draft[j], u, u2, &accepted);
    out.push_back(t);
    if (!accepted) return out;
    hist.push_back(t);
  }
  out.push_back(sampler.sample(rows + k * static_cast<size_t>(n_vocab), hist));
  return out;
}

}  // namespace tessera
