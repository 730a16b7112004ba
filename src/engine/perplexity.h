// Perplexity with llama.cpp's method: the token stream (BOS first) is cut into chunks of
// n_ctx tokens; each chunk is evaluated from an empty cache with its first token replaced
// by BOS, and only the second half of each chunk is scored: the prediction of token j+1
// from position j for j in [n_ctx/2, n_ctx-2].
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "models/model.h"

namespace tessera {

struct PerplexityResult {
  int n_chunks = 0;
  int64_t n_scored = 0;
  double ppl = 0.0;
  double ppl_stderr = 0.0;
  std::vector<double> running_ppl;  // estimate after each chunk
};

// on_chunk(i, running_ppl) is called after each chunk (for progress output).
PerplexityResult compute_perplexity(Model& model, const std::vector<int32_t>& tokens, int n_ctx,
                                    int n_batch,
                                    const std::function<void(int, double)>& on_chunk = {});

}  // namespace tessera
