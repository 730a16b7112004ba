#include "engine/sequence_runner.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace tessera {

SequenceRunner::SequenceRunner(Model& model, int n_ctx) : model_(model), n_ctx_(n_ctx) {
  if (n_ctx <= 0) throw Error("context size must be positive");
  const int n_blocks = (n_ctx + kBlockSize - 1) / kBlockSize;
  kv_ = model.make_kv_cache(n_blocks, kBlockSize);
  runner_ = std::make_unique<ModelRunner>(model, *kv_, kBlockSize);
  table_.resize(n_blocks);
  for (int i = 0; i < n_blocks; ++i) table_[i] = i;
}

void SequenceRunner::eval(const std::vector<int32_t>& tokens, const std::vector<int32_t>& want,
                          float* logits, int n_batch) {
  const int n = static_cast<int>(tokens.size());
  if (n_past_ + n > n_ctx_)
    throw Error("context full: " + std::to_string(n_past_ + n) + " tokens exceed the context of " +
                std::to_string(n_ctx_));
  if (n_past_ == 0) n_prompt_ = n;
  const int n_vocab = model_.config().n_vocab;
  // The chunk reads the sequence's tokens by position: seq_ holds positions
  // [n_past, n_past + n) at those indices (the earlier ones are never read).
  seq_.resize(n_past_ + n);
  std::copy(tokens.begin(), tokens.end(), seq_.begin() + n_past_);
  size_t w = 0;
  for (int start = 0; start < n; start += n_batch) {
    const int m = std::min(n_batch, n - start);
    SeqChunk c;
    c.tokens = seq_.data();
    c.start = n_past_;
    c.n_new = m;
    c.n_prompt = n_prompt_;
    c.block_table = table_.data();
    // `want` is ascending: this batch's share is want[w0, w). The runner computes the logits
    // of the position range they span (all of it when, as in every caller, they are
    // contiguous) and the rows asked for are copied out.
    const size_t w0 = w;
    while (w < want.size() && want[w] < start + m) ++w;
    c.out_begin = c.out_end = c.start;
    if (w > w0) {
      c.out_begin = n_past_ + (want[w0] - start);
      c.out_end = n_past_ + (want[w - 1] - start) + 1;
    }
    const float* out = runner_->forward({c});
    // The runner returned rows [out_begin, out_end); keep those `want` asked for.
    for (size_t k = w0; k < w; ++k) {
      const int row = want[k] - want[w0];
      std::memcpy(logits, out + static_cast<size_t>(row) * n_vocab, sizeof(float) * n_vocab);
      logits += n_vocab;
    }
    n_past_ += m;
  }
}

}  // namespace tessera
