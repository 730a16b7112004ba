#include "engine/model_runner.h"

#include <algorithm>
#include <cassert>

#include "engine/distributed_step.h"
#include "engine/speculative.h"
#include "structured/sequence_grammar.h"

namespace tessera {

ModelRunner::ModelRunner(Model& model, KVCache& kv, int block_size)
    : model_(model), kv_(kv), block_size_(block_size) {}

float* ModelRunner::forward(const std::vector<SeqChunk>& chunks) {
  const int B = block_size_;
  tokens_.clear();
  pos_.clear();
  seq_of_.clear();
  slots_.clear();
  tiled_.clear();
  out_rows_.clear();
  tables_.clear();
  // [n_tokens] rows: the chunks' tokens back to back.
  for (size_t i = 0; i < chunks.size(); ++i) {
    const SeqChunk& c = chunks[i];
    assert(c.start <= c.out_begin || c.out_begin == c.out_end);
    assert(c.out_end <= c.start + c.n_new);
    tables_.push_back(c.block_table);
    for (int p = c.start; p < c.start + c.n_new; ++p) {
      if (p >= c.out_begin && p < c.out_end)
        out_rows_.push_back(static_cast<int32_t>(tokens_.size()));
      tokens_.push_back(c.tokens[p]);
      pos_.push_back(p);
      seq_of_.push_back(static_cast<int32_t>(i));
      slots_.push_back(c.block_table[p / B] * B + p % B);
      tiled_.push_back(tiled_row(p, c.n_prompt));
    }
  }
  const size_t n_vocab = static_cast<size_t>(model_.config().n_vocab);
  if (logits_.size() < out_rows_.size() * n_vocab) logits_.resize(out_rows_.size() * n_vocab);

  ForwardBatch fb;
  fb.n_tokens = static_cast<int>(tokens_.size());
  fb.tokens = tokens_.data();
  fb.pos = pos_.data();
  fb.seq_of = seq_of_.data();
  fb.slots = slots_.data();
  fb.block_tables = tables_.data();
  fb.prompt_tiled = tiled_.data();
  fb.n_out = static_cast<int>(out_rows_.size());
  fb.out_rows = out_rows_.data();
  if (publisher_ == nullptr) {
    model_.forward(fb, kv_, logits_.data());
    return logits_.data();
  }
  publisher_->publish(chunks);
  try {
    model_.forward(fb, kv_, logits_.data());
  } catch (const std::exception& e) {
    publisher_->failed(e.what());  // the other ranks are in this pass's collectives
  }
  publisher_->done();
  return logits_.data();
}

RunnerOutput ModelRunner::run(const SchedulerOutput& out) {
  chunks_.clear();
  spec_seqs_.resize(out.items.size());
  for (size_t i = 0; i < out.items.size(); ++i) {
    const ScheduledItem& it = out.items[i];
    const Request& r = *it.req;
    SeqChunk c;
    c.tokens = r.tokens.data();
    c.start = it.start;
    c.n_new = it.n_new;
    c.n_prompt = r.n_prompt;
    c.block_table = r.blocks.data();
    c.out_begin = it.sample ? it.start + it.n_new - 1 : it.start;
    c.out_end = it.sample ? it.start + it.n_new : it.start;
    if (it.sample && !r.spec_tokens.empty()) {
      // Verification: the last verified token and the k proposals after it, k + 1 rows.
      std::vector<int32_t>& seq = spec_seqs_[i];
      seq.assign(r.tokens.begin(), r.tokens.end());
      seq.insert(seq.end(), r.spec_tokens.begin(), r.spec_tokens.end());
      c.tokens = seq.data();
      c.out_begin = r.n_tokens() - 1;
    }
    chunks_.push_back(c);
  }
  float* logits = forward(chunks_);

  const size_t n_vocab = static_cast<size_t>(model_.config().n_vocab);
  RunnerOutput o;
  o.sampled.resize(out.items.size());
  size_t row = 0;
  for (size_t i = 0; i < out.items.size(); ++i) {
    if (!out.items[i].sample) continue;
    Request& r = *out.items[i].req;
    if (!r.spec_tokens.empty()) {
      o.sampled[i] = verify(r, logits + row * n_vocab);
      row += 1 + r.spec_tokens.size();
      continue;
    }
    o.sampled[i].push_back(sample(r, logits + row++ * n_vocab));
  }
  return o;
}

std::vector<GeneratedToken> ModelRunner::verify(Request& r, float* rows) {
  assert(spec_ && r.sampler && !r.grammar);  // constrained sequences are never proposed for
  const size_t n_vocab = static_cast<size_t>(model_.config().n_vocab);
  const size_t n_rows = 1 + r.spec_tokens.size();
  const int k = r.params.logprobs;
  if (k >= 0) raw_.assign(rows, rows + n_rows * n_vocab);  // the sampler edits rows in place
  const std::vector<int32_t> ids = spec_->verify(r, *r.sampler, rows, static_cast<int>(n_vocab));
  std::vector<GeneratedToken> out(ids.size());
  for (size_t j = 0; j < ids.size(); ++j) {
    out[j].token = ids[j];
    if (k >= 0) fill_logprobs(raw_.data() + j * n_vocab, k, out[j]);
  }
  return out;
}

void ModelRunner::fill_logprobs(const float* lg, int k, GeneratedToken& g) {
  const int n_vocab = model_.config().n_vocab;
  const float lse = static_cast<float>(log_sum_exp(lg, n_vocab));
  if (k > 0) {
    idx_.resize(n_vocab);
    for (int v = 0; v < n_vocab; ++v) idx_[v] = v;
    std::partial_sort(idx_.begin(), idx_.begin() + k, idx_.end(), [&](int32_t a, int32_t b) {
      return lg[a] > lg[b] || (lg[a] == lg[b] && a < b);
    });
    for (int j = 0; j < k; ++j) g.top.push_back({idx_[j], lg[idx_[j]] - lse});
  }
  const float chosen = lg[g.token];
  g.logprob = chosen - lse;
  g.rank = 1 + static_cast<int32_t>(
                   std::count_if(lg, lg + n_vocab, [&](float x) { return x > chosen; }));
}

// The request's sampler on `lg`, under its grammar's mask when it has one (given the
// tokens left, so that the document is closed before max_tokens cuts it).
int32_t ModelRunner::draw(Request& r, float* lg, int n_vocab) {
  if (!r.grammar) return r.sampler->sample(lg, r.tokens);
  const int32_t t = r.grammar->sample(lg, n_vocab, r.max_tokens - r.n_output(),
                                      [&](float* l) { return r.sampler->sample(l, r.tokens); });
  // Nothing allowed: any token; the output processor's accept() rejects it and ends the
  // sequence.
  return t >= 0 ? t : r.sampler->sample(lg, r.tokens);
}

GeneratedToken ModelRunner::sample(Request& r, float* lg) {
  assert(r.sampler);
  const int n_vocab = model_.config().n_vocab;
  GeneratedToken g;
  const int k = r.params.logprobs;
  if (k < 0) {
    g.token = draw(r, lg, n_vocab);
    return g;
  }
  // Log-probabilities of the model's own distribution: taken from a copy of the raw row,
  // since penalties, temperature and the grammar's mask change `lg` in place.
  scratch_.assign(lg, lg + n_vocab);
  g.token = draw(r, lg, n_vocab);
  fill_logprobs(scratch_.data(), k, g);
  return g;
}

}  // namespace tessera
