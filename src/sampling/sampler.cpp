#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>

namespace tessera {

Sampler::Sampler(const SamplingParams& params, int n_vocab)
    : params_(params),
      n_vocab_(n_vocab),
      rng_(params.has_seed ? params.seed : std::random_device{}()) {
  cand_.reserve(n_vocab);
}

void Sampler::apply_penalties(float* logits, const std::vector<int32_t>& history) {
  const SamplingParams& p = params_;
  if (p.repetition_penalty == 1.0f && p.presence_penalty == 0.0f && p.frequency_penalty == 0.0f)
    return;
  if (p.penalty_last_n == 0) return;
  const size_t n =
      p.penalty_last_n < 0 ? history.size() : std::min(history.size(), size_t(p.penalty_last_n));
  counts_.clear();
  for (size_t i = history.size() - n; i < history.size(); ++i) ++counts_[history[i]];
  for (const auto& [tok, count] : counts_) {
    if (tok < 0 || tok >= n_vocab_) continue;
    float& l = logits[tok];
    l = l > 0.0f ? l / p.repetition_penalty : l * p.repetition_penalty;
    l -= count * p.frequency_penalty + (count > 0 ? 1.0f : 0.0f) * p.presence_penalty;
  }
}

int32_t Sampler::sample(float* logits, const std::vector<int32_t>& history) {
  const int32_t argmax = prepare(logits, history);
  if (argmax >= 0) return argmax;
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  double r = uni(rng_), cum = 0.0;
  for (const auto& c : cand_) {
    cum += c.p;
    if (r < cum) return c.id;
  }
  return cand_.back().id;
}

void Sampler::distribution(float* logits, const std::vector<int32_t>& history,
                           std::vector<TokenProb>& out) {
  out.clear();
  const int32_t argmax = prepare(logits, history);
  if (argmax >= 0) {
    out.push_back({argmax, 1.0f});
    return;
  }
  for (const auto& c : cand_) out.push_back({c.id, c.p});
}

double Sampler::uniform() {
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  return uni(rng_);
}

int32_t Sampler::prepare(float* logits, const std::vector<int32_t>& history) {
  const SamplingParams& p = params_;
  apply_penalties(logits, history);
  for (const auto& [tok, bias] : p.logit_bias)
    if (tok >= 0 && tok < n_vocab_) logits[tok] += bias;

  if (p.temperature <= 0.0f) {
    // Greedy: the first maximum, as a stable argmax.
    return static_cast<int32_t>(std::max_element(logits, logits + n_vocab_) - logits);
  }

  cand_.clear();
  for (int32_t i = 0; i < n_vocab_; ++i) cand_.push_back({i, logits[i], 0.0f});
  auto by_logit = [](const Candidate& a, const Candidate& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  };
  // top-k: keep the k largest, sorted.
  size_t k = cand_.size();
  if (p.top_k > 0) k = std::min(k, static_cast<size_t>(p.top_k));
  std::partial_sort(cand_.begin(), cand_.begin() + k, cand_.end(), by_logit);
  cand_.resize(k);

  auto softmax = [&](float temp) {
    const float mx = cand_.front().logit;
    double sum = 0.0;
    for (auto& c : cand_) sum += (c.p = std::exp((c.logit - mx) / temp));
    for (auto& c : cand_) c.p = static_cast<float>(c.p / sum);
  };
  softmax(1.0f);
  // top-p: the smallest prefix whose probability mass reaches p (at least one token).
  if (p.top_p < 1.0f) {
    double cum = 0.0;
    size_t keep = cand_.size();
    for (size_t i = 0; i < cand_.size(); ++i) {
      cum += cand_[i].p;
      if (cum >= p.top_p) {
        keep = i + 1;
        break;
      }
    }
    cand_.resize(keep);
  }
  // min-p: drop tokens less likely than min_p times the most likely one.
  if (p.min_p > 0.0f) {
    const float threshold = cand_.front().p * p.min_p;
    size_t keep = 1;
    while (keep < cand_.size() && cand_[keep].p >= threshold) ++keep;
    cand_.resize(keep);
  }
  softmax(p.temperature);
  return -1;
}

double log_sum_exp(const float* x, int n) {
  const float mx = *std::max_element(x, x + n);
  double sum = 0.0;
  for (int v = 0; v < n; ++v) sum += std::exp(static_cast<double>(x[v] - mx));
  return mx + std::log(sum);
}

}  // namespace tessera
