// Token sampling: penalties -> logit bias -> (greedy | top-k -> top-p -> min-p ->
// temperature -> draw). The order and the meaning of each knob follow llama.cpp's
// default sampler chain, so the same settings behave the same way.
#pragma once
#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>

namespace tessera {

struct SamplingParams {
  float temperature = 0.8f;         // <= 0: greedy (argmax)
  int top_k = 40;                   // <= 0: off
  float top_p = 0.95f;              // >= 1: off
  float min_p = 0.05f;              // <= 0: off
  float repetition_penalty = 1.0f;  // 1: off (divides positive logits, multiplies negative)
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  int penalty_last_n = 64;  // how many recent tokens the penalties look at (-1: all)
  uint64_t seed = 0;        // used when has_seed
  bool has_seed = false;    // false: seeded from std::random_device
  std::unordered_map<int32_t, float> logit_bias;  // added to the logit of each listed token
};

// log(sum_v exp(x[v])) over x[0..n), in double around the maximum (no overflow): the
// normalizer of log-probabilities (logprobs, perplexity).
double log_sum_exp(const float* x, int n);

class Sampler {
 public:
  Sampler(const SamplingParams& params, int n_vocab);

  // Picks the next token. `logits` ([n_vocab]) is modified in place. `history` holds the
  // tokens the penalties consider (prompt and generated so far).
  int32_t sample(float* logits, const std::vector<int32_t>& history);

  const SamplingParams& params() const { return params_; }

  // The distribution sample() draws from, after penalties, bias, top-k/top-p/min-p and
  // temperature: tokens with non-zero probability, most likely first, probabilities
  // summing to 1. Greedy: the argmax alone with probability 1. `logits` is modified in
  // place. Speculative decoding compares these target and draft distributions.
  struct TokenProb {
    int32_t id;
    float p;
  };
  void distribution(float* logits, const std::vector<int32_t>& history,
                    std::vector<TokenProb>& out);
  // A draw in [0, 1) from this sampler's generator.
  double uniform();
  bool greedy() const { return params_.temperature <= 0.0f; }

 private:
  struct Candidate {
    int32_t id;
    float logit;
    float p;
  };
  void apply_penalties(float* logits, const std::vector<int32_t>& history);
  // Penalties, bias, then greedy's argmax (returned) or the candidates in cand_ (-1).
  int32_t prepare(float* logits, const std::vector<int32_t>& history);

  SamplingParams params_;
  int n_vocab_;
  std::mt19937_64 rng_;
  std::vector<Candidate> cand_;
  std::unordered_map<int32_t, int> counts_;
};

}  // namespace tessera
