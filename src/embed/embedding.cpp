// Embedding tasks, settings and the runner. See embedding.h.
#include "embed/embedding.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "loader/gguf.h"
#include "loader/hf_encoder.h"
#include "models/encoder.h"

namespace tessera {

namespace {

// llama.cpp's enum llama_pooling_type, as {arch}.pooling_type stores it.
constexpr int64_t kPoolNone = 0, kPoolMean = 1, kPoolCls = 2, kPoolLast = 3, kPoolRank = 4;

const EncoderModel* as_encoder(const Model& m) {
  return dynamic_cast<const EncoderModel*>(&m);
}

// Longest input a decoder embeds by default (its KV scratch and batch are sized by it).
constexpr int kMaxDecoderLen = 8192;
constexpr int kMinBatchTokens = 2048;

}  // namespace

const char* pooling_name(Pooling p) {
  switch (p) {
    case Pooling::MEAN:
      return "mean";
    case Pooling::CLS:
      return "cls";
    case Pooling::LAST:
      return "last";
  }
  return "";
}

Pooling parse_pooling(const std::string& name) {
  if (name == "mean") return Pooling::MEAN;
  if (name == "cls") return Pooling::CLS;
  if (name == "last") return Pooling::LAST;
  throw Error("unknown pooling '" + name + "' (mean, cls, last)");
}

std::optional<EmbedTask> embedding_task(const Model& model, const std::string& task) {
  const EncoderModel* enc = as_encoder(model);
  const std::string& arch = model.config().arch;
  if (task == "generate") {
    if (enc)
      throw Error("'" + arch +
                  "' is an encoder: it serves embeddings or scores (--task embed / score), "
                  "not text generation");
    return std::nullopt;
  }
  if (task == "embed") {
    if (enc && enc->n_labels() > 0)
      throw Error(
          "this model is a cross-encoder (it has a classification head): serve it with "
          "--task score");
    return EmbedTask::EMBED;
  }
  if (task == "score") {
    if (!enc || enc->n_labels() == 0)
      throw Error(
          "--task score needs a cross-encoder (an encoder with a classification head, "
          "e.g. BertForSequenceClassification)");
    return EmbedTask::SCORE;
  }
  if (task == "auto") {
    if (!enc) return std::nullopt;
    return enc->n_labels() > 0 ? EmbedTask::SCORE : EmbedTask::EMBED;
  }
  throw Error("unknown task '" + task + "' (auto, generate, embed, score)");
}

EmbedSettings resolve_embed_settings(const Model& model, EmbedTask task, const EmbedOptions& o) {
  const EncoderModel* enc = as_encoder(model);
  const gguf::Source& f = model.file();
  const std::string& arch = model.config().arch;
  EmbedSettings s;
  s.task = task;

  s.pooling = enc ? Pooling::CLS : Pooling::LAST;  // BERT's [CLS]; a decoder's last token
  if (!o.pooling.empty()) {
    s.pooling = parse_pooling(o.pooling);
  } else if (auto p = f.get_int(arch + ".pooling_type")) {
    switch (*p) {
      case kPoolMean:
        s.pooling = Pooling::MEAN;
        break;
      case kPoolCls:
      case kPoolRank:  // a cross-encoder reads [CLS]
        s.pooling = Pooling::CLS;
        break;
      case kPoolLast:
        s.pooling = Pooling::LAST;
        break;
      case kPoolNone:
        break;
      default:
        throw Error(arch + ".pooling_type = " + std::to_string(*p) + " is not a pooling type");
    }
  }
  s.normalize = o.normalize.value_or(f.get_bool(hf::kEmbedNormalizeKey).value_or(true));
  s.sigmoid = f.get_string(hf::kScoreActivationKey).value_or("sigmoid") != "identity";

  const int positions = enc ? enc->max_positions() : model.config().n_ctx_train;
  s.max_len = enc ? positions : std::min(positions, kMaxDecoderLen);
  if (auto ml = f.get_int(hf::kEmbedMaxLenKey); ml && *ml > 0)
    s.max_len = static_cast<int>(std::min<int64_t>(s.max_len, *ml));
  if (o.max_model_len > 0) {
    if (o.max_model_len > positions)
      throw Error("--max-model-len " + std::to_string(o.max_model_len) + " exceeds the model's " +
                  std::to_string(positions) + " positions");
    s.max_len = o.max_model_len;
  }
  s.max_batch_tokens =
      o.max_batch_tokens > 0 ? o.max_batch_tokens : std::max(kMinBatchTokens, s.max_len);
  if (s.max_batch_tokens < s.max_len)
    throw Error("tokens per batch (" + std::to_string(s.max_batch_tokens) +
                ") must hold the longest input (" + std::to_string(s.max_len) + " tokens)");
  if (o.max_batch_seqs < 1) throw Error("inputs per batch must be >= 1");
  s.max_batch_seqs = o.max_batch_seqs;
  if (task == EmbedTask::SCORE && (!enc || enc->n_labels() == 0))
    throw Error("scoring needs a cross-encoder (a classification head)");
  return s;
}

EmbeddingRunner::EmbeddingRunner(Model& model, const EmbedSettings& s) : model_(model), s_(s) {
  const EncoderModel* enc = as_encoder(model);
  dim_ = s.task == EmbedTask::SCORE ? (enc ? enc->n_labels() : 0) : model.config().n_embd;
  if (dim_ < 1) throw Error("this model has no outputs for the task");
  if (!enc) {
    // One slot per token (blocks of 1): a pass of max_batch_tokens tokens fits whatever the
    // lengths of its sequences.
    const ModelConfig& c = model.config();
    kv_ = std::make_unique<KVCache>(model.backend(), c.n_layer, c.kv_dim(), s.max_batch_tokens, 1,
                                    model.kv_cache_type());
  }
}

EmbeddingRunner::~EmbeddingRunner() = default;

void EmbeddingRunner::check(const EmbedInput& in) const {
  if (in.tokens.empty()) throw Error("an input has no tokens");
  if (static_cast<int>(in.tokens.size()) > s_.max_len)
    throw Error("an input of " + std::to_string(in.tokens.size()) +
                " tokens is longer than this model's maximum of " + std::to_string(s_.max_len) +
                " tokens");
  const int32_t n_vocab = model_.config().n_vocab;
  for (int32_t t : in.tokens)
    if (t < 0 || t >= n_vocab)
      throw Error("token id " + std::to_string(t) + " is outside the vocabulary [0, " +
                  std::to_string(n_vocab) + ")");
  if (in.types.empty()) return;
  const EncoderModel* enc = as_encoder(model_);
  if (in.types.size() != in.tokens.size()) throw Error("segment ids must be one per token");
  const int n_types = enc ? enc->n_token_types() : 1;
  for (int32_t t : in.types)
    if (t < 0 || t >= n_types)
      throw Error("segment id " + std::to_string(t) + " is out of range [0, " +
                  std::to_string(n_types) + ")");
}

void EmbeddingRunner::run(std::span<const EmbedInput* const> inputs,
                          std::vector<std::vector<float>>& out) {
  const int n_seqs = static_cast<int>(inputs.size());
  out.assign(n_seqs, {});
  if (n_seqs == 0) return;
  if (n_seqs > s_.max_batch_seqs) throw Error("embedding batch has too many inputs");
  tokens_.clear();
  types_.clear();
  seq_start_.assign(1, 0);
  bool any_types = false;
  for (const EmbedInput* in : inputs) {
    check(*in);
    any_types = any_types || !in->types.empty();
  }
  for (const EmbedInput* in : inputs) {
    tokens_.insert(tokens_.end(), in->tokens.begin(), in->tokens.end());
    if (any_types) {
      if (in->types.empty())
        types_.insert(types_.end(), in->tokens.size(), 0);
      else
        types_.insert(types_.end(), in->types.begin(), in->types.end());
    }
    seq_start_.push_back(static_cast<int32_t>(tokens_.size()));
  }
  if (static_cast<int>(tokens_.size()) > s_.max_batch_tokens)
    throw Error("embedding batch has too many tokens");

  pooled_.resize(static_cast<size_t>(n_seqs) * dim_);
  if (auto* enc = dynamic_cast<EncoderModel*>(&model_)) {
    EncodeBatch b;
    b.n_tokens = static_cast<int>(tokens_.size());
    b.tokens = tokens_.data();
    b.token_types = any_types ? types_.data() : nullptr;
    b.n_seqs = n_seqs;
    b.seq_start = seq_start_.data();
    if (s_.task == EmbedTask::SCORE) {
      enc->classify(b, pooled_.data());
    } else {
      const RowPool rp = s_.pooling == Pooling::MEAN  ? RowPool::MEAN
                         : s_.pooling == Pooling::CLS ? RowPool::FIRST
                                                      : RowPool::LAST;
      enc->embed(b, rp, pooled_.data());
    }
  } else {
    run_decoder(inputs, pooled_.data());
  }
  for (int i = 0; i < n_seqs; ++i)
    out[i].assign(pooled_.begin() + static_cast<int64_t>(i) * dim_,
                  pooled_.begin() + static_cast<int64_t>(i + 1) * dim_);
}

// A decoder pass over the packed inputs: each sequence's K/V go to its own slots of the
// scratch cache (one block per token, so no slot is wasted), causal attention within the
// sequence, and only the rows the pooling reads leave the model.
void EmbeddingRunner::run_decoder(std::span<const EmbedInput* const> inputs, float* out) {
  const int n_seqs = static_cast<int>(inputs.size());
  const int n = static_cast<int>(tokens_.size());
  const int E = model_.config().n_embd;
  pos_.resize(n);
  seq_of_.resize(n);
  slots_.resize(n);
  out_rows_.clear();
  tables_.resize(n_seqs);
  table_ptrs_.resize(n_seqs);
  for (int s = 0; s < n_seqs; ++s) {
    const int b = seq_start_[s], e = seq_start_[s + 1];
    tables_[s].resize(e - b);
    for (int i = b; i < e; ++i) {
      pos_[i] = i - b;
      seq_of_[i] = s;
      slots_[i] = i;  // block i of size 1
      tables_[s][i - b] = i;
    }
    table_ptrs_[s] = tables_[s].data();
    if (s_.pooling == Pooling::MEAN)
      for (int i = b; i < e; ++i) out_rows_.push_back(i);
    else
      out_rows_.push_back(s_.pooling == Pooling::CLS ? b : e - 1);
  }
  ForwardBatch fb;
  fb.n_tokens = n;
  fb.tokens = tokens_.data();
  fb.pos = pos_.data();
  fb.seq_of = seq_of_.data();
  fb.slots = slots_.data();
  fb.block_tables = table_ptrs_.data();
  fb.n_out = static_cast<int>(out_rows_.size());
  fb.out_rows = out_rows_.data();
  if (s_.pooling != Pooling::MEAN) {
    model_.forward_hidden(fb, *kv_, out);  // one row per sequence: [n_seqs, n_embd]
    return;
  }
  hidden_.resize(static_cast<size_t>(n) * E);
  model_.forward_hidden(fb, *kv_, hidden_.data());  // [n, n_embd]
  model_.backend().pool_rows(hidden_.data(), E, seq_start_.data(), n_seqs, RowPool::MEAN, out);
}

void finish_embedding(std::vector<float>& v, int dims, bool normalize) {
  if (dims > 0 && static_cast<size_t>(dims) < v.size()) v.resize(dims);
  if (!normalize) return;
  double sq = 0.0;
  for (float x : v) sq += static_cast<double>(x) * x;
  const double norm = std::max(std::sqrt(sq), 1e-12);
  for (float& x : v) x = static_cast<float>(x / norm);
}

}  // namespace tessera
