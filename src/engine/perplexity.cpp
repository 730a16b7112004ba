#include "engine/perplexity.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "engine/sequence_runner.h"
#include "sampling/sampler.h"

namespace tessera {

PerplexityResult compute_perplexity(Model& model, const std::vector<int32_t>& tokens, int n_ctx,
                                    int n_batch, const std::function<void(int, double)>& on_chunk) {
  if (n_ctx < 4) throw Error("perplexity needs a context of at least 4 tokens");
  const int n_chunks = static_cast<int>(tokens.size() / n_ctx);
  if (n_chunks < 1)
    throw Error("the text has " + std::to_string(tokens.size()) +
                " tokens, fewer than one chunk of " + std::to_string(n_ctx));
  const int n_vocab = model.config().n_vocab;
  const int first = n_ctx / 2;
  const int32_t bos = model.tokenizer().bos_id();
  const bool add_bos = model.tokenizer().add_bos() && bos >= 0;

  SequenceRunner runner(model, n_ctx);
  std::vector<int32_t> want;
  for (int j = first; j < n_ctx - 1; ++j) want.push_back(j);
  std::vector<float> logits(want.size() * static_cast<size_t>(n_vocab));

  PerplexityResult r;
  double nll = 0.0, nll2 = 0.0;
  for (int c = 0; c < n_chunks; ++c) {
    std::vector<int32_t> chunk(tokens.begin() + int64_t{c} * n_ctx,
                               tokens.begin() + int64_t{c + 1} * n_ctx);
    if (add_bos) chunk[0] = bos;
    runner.reset();
    runner.eval(chunk, want, logits.data(), std::max(1, std::min(n_batch, n_ctx)));
    for (size_t i = 0; i < want.size(); ++i) {
      const float* l = logits.data() + i * n_vocab;
      const int32_t target = chunk[want[i] + 1];
      const double lp = l[target] - log_sum_exp(l, n_vocab);
      nll -= lp;
      nll2 += lp * lp;
    }
    r.n_scored += static_cast<int64_t>(want.size());
    r.running_ppl.push_back(std::exp(nll / r.n_scored));
    if (on_chunk) on_chunk(c, r.running_ppl.back());
  }
  r.n_chunks = n_chunks;
  const double mean = nll / r.n_scored;
  r.ppl = std::exp(mean);
  const double var = nll2 / r.n_scored - mean * mean;
  r.ppl_stderr = r.n_scored > 1 && var > 0 ? r.ppl * std::sqrt(var / (r.n_scored - 1)) : 0.0;
  return r;
}

}  // namespace tessera
