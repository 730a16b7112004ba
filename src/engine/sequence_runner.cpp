#include "engine/sequence_runner.h"

#include <algorithm>

#include "core/error.h"

namespace tessera {

SequenceRunner::SequenceRunner(Model& model, int n_ctx) : model_(model), n_ctx_(n_ctx) {
  if (n_ctx <= 0) throw Error("context size must be positive");
  const int n_blocks = (n_ctx + kBlockSize - 1) / kBlockSize;
  kv_ = model.make_kv_cache(n_blocks, kBlockSize);
  table_.resize(n_blocks);
  for (int i = 0; i < n_blocks; ++i) table_[i] = i;
}

void SequenceRunner::eval(const std::vector<int32_t>& tokens, const std::vector<int32_t>& want,
                          float* logits, int n_batch) {
  const int n = static_cast<int>(tokens.size());
  if (n_past_ + n > n_ctx_)
    throw Error("context full: " + std::to_string(n_past_ + n) + " tokens exceed the context of " +
                std::to_string(n_ctx_));
  const int n_vocab = model_.config().n_vocab;
  const int32_t* tables[1] = {table_.data()};
  size_t w = 0;
  for (int start = 0; start < n; start += n_batch) {
    const int m = std::min(n_batch, n - start);
    pos_.resize(m);
    seq_.assign(m, 0);
    for (int i = 0; i < m; ++i) pos_[i] = n_past_ + i;  // slot == position
    out_.clear();
    for (; w < want.size() && want[w] < start + m; ++w) out_.push_back(want[w] - start);
    ForwardBatch b;
    b.n_tokens = m;
    b.tokens = tokens.data() + start;
    b.pos = pos_.data();
    b.seq_of = seq_.data();
    b.slots = pos_.data();
    b.block_tables = tables;
    // A batch of kTiledPromptMin rows or more takes llama.cpp's tiled attention, as there.
    tiled_.assign(m, m >= kTiledPromptMin);
    b.prompt_tiled = tiled_.data();
    b.n_out = static_cast<int>(out_.size());
    b.out_rows = out_.data();
    model_.forward(b, *kv_, logits);
    logits += static_cast<int64_t>(b.n_out) * n_vocab;
    n_past_ += m;
  }
}

}  // namespace tessera
