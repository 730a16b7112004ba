// BertModel: the encoder described in encoder.h, over llama.cpp's "bert" tensor names
// (token_embd, position_embd, token_types, token_embd_norm, blk.N.attn_{q,k,v,output},
// attn_output_norm, ffn_up, ffn_down, layer_output_norm; cls, cls.output for cross-encoders).
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "loader/gguf.h"
#include "models/encoder.h"
#include "models/weight_quant.h"
#include "models/weights.h"

namespace tessera {

void EncoderModel::forward(const ForwardBatch&, KVCache&, float*) {
  throw Error("'" + config_.arch +
              "' is an encoder: it computes embeddings and scores, it does not generate text");
}

namespace {

struct BertLayer {
  Tensor wq, wk, wv, wo;     // [n_embd -> n_embd] each
  Tensor bq, bk, bv, bo;     // [n_embd]
  const float* attn_norm_w;  // attn_output_norm: [n_embd]
  const float* attn_norm_b;  // [n_embd]
  Tensor w_up, b_up;         // [n_embd -> n_ff], [n_ff]
  Tensor w_down, b_down;     // [n_ff -> n_embd], [n_embd]
  const float* out_norm_w;   // layer_output_norm: [n_embd]
  const float* out_norm_b;   // [n_embd]
};

class BertModel final : public EncoderModel {
 public:
  BertModel(std::unique_ptr<gguf::Source> file, const std::string& arch, const ModelOptions& opts);
  ~BertModel() override { release_buffers(); }

  void embed(const EncodeBatch& b, RowPool pool, float* out) override;
  void classify(const EncodeBatch& b, float* out) override;

 private:
  Tensor tensor(const std::string& name, std::initializer_list<int64_t> shape, bool required);
  // An F32 vector of n elements (norm weights and biases).
  const float* vec(const std::string& name, int64_t n, bool required = true);
  // x_[n_tokens, n_embd] = the last layer's hidden states.
  void encode(const EncodeBatch& b);
  void check(const EncodeBatch& b) const;
  void ensure_capacity(int n_tokens, int n_seqs);
  void release_buffers();

  float eps_ = 1e-12f;
  Tensor tok_embd_, pos_embd_, type_embd_;
  const float *embd_norm_w_ = nullptr, *embd_norm_b_ = nullptr;
  std::vector<BertLayer> layers_;
  Tensor cls_, cls_b_, cls_out_, cls_out_b_;  // classification head (cls optional)
  std::optional<DType> quant_;
  int n_threads_ = 0;
  std::vector<std::unique_ptr<uint8_t[]>> owned_weights_;  // matrices converted at load time

  int capacity_ = 0, seq_capacity_ = 0;
  // [capacity_, width] activations; pooled_/head_ are [seq_capacity_, n_embd].
  float *x_ = nullptr, *tmp_ = nullptr, *q_ = nullptr, *k_ = nullptr, *v_ = nullptr,
        *att_ = nullptr, *up_ = nullptr, *pooled_ = nullptr, *head_ = nullptr;
  std::vector<int32_t> pos_, types_;  // host-side inputs of the embedding lookups
};

Tensor BertModel::tensor(const std::string& name, std::initializer_list<int64_t> shape,
                         bool required) {
  Tensor t = find_weight(*file_, name, shape, required);
  if (!t) return {};
  // Weight matrices (not embedding tables, norms or biases) may be converted at load time.
  const bool matrix = shape.size() == 2 && name.starts_with("blk.");
  if (quant_ && matrix) t = convert_weight(t, *quant_, owned_weights_, n_threads_);
  weight_stats_.n_params += static_cast<uint64_t>(t.rows() * t.cols());
  weight_stats_.n_bytes += static_cast<uint64_t>(t.rows()) * t.row_bytes();
  if (matrix) weight_stats_.decode_bytes += static_cast<uint64_t>(t.rows()) * t.row_bytes();
  return t;
}

const float* BertModel::vec(const std::string& name, int64_t n, bool required) {
  Tensor t = tensor(name, {n}, required);
  if (!t) return nullptr;
  if (t.type != DType::F32) throw Error("tensor '" + name + "' must be F32");
  return static_cast<const float*>(t.data);
}

BertModel::BertModel(std::unique_ptr<gguf::Source> file, const std::string& arch,
                     const ModelOptions& opts) {
  file_ = std::move(file);
  config_ = read_model_config(*file_, arch);
  tokenizer_ = Tokenizer::from_gguf(*file_);
  config_.n_vocab = tokenizer_->n_vocab();
  quant_ = parse_weight_type(opts.quantization);
  n_threads_ = opts.n_threads;
  backend_ = make_backend(opts.backend, {.n_threads = opts.n_threads, .repack = opts.repack});
  if (file_->get_bool(arch + ".attention.causal").value_or(false))
    throw Error("a causal '" + arch + "' model is not supported (encoders attend both ways)");
  eps_ =
      static_cast<float>(file_->get_float(arch + ".attention.layer_norm_epsilon").value_or(1e-12));
  if (!(eps_ > 0.0f && eps_ < 1.0f)) throw Error("attention.layer_norm_epsilon out of range");

  const ModelConfig& c = config_;
  if (c.n_head_kv != c.n_head || c.head_dim * c.n_head != c.n_embd)
    throw Error("BERT attention needs head_count_kv == head_count and head_dim * heads == width");
  const int64_t E = c.n_embd, F = c.n_ff;
  tok_embd_ = tensor("token_embd.weight", {E, c.n_vocab}, true);
  pos_embd_ = tensor("position_embd.weight", {E, -1}, true);
  n_positions_ = static_cast<int>(std::min<int64_t>(pos_embd_.rows(), c.n_ctx_train));
  type_embd_ = tensor("token_types.weight", {E, -1}, false);
  n_token_types_ = type_embd_ ? static_cast<int>(type_embd_.rows()) : 1;
  embd_norm_w_ = vec("token_embd_norm.weight", E);
  embd_norm_b_ = vec("token_embd_norm.bias", E);
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    BertLayer L;
    L.wq = tensor(p + "attn_q.weight", {E, E}, true);
    L.wk = tensor(p + "attn_k.weight", {E, E}, true);
    L.wv = tensor(p + "attn_v.weight", {E, E}, true);
    L.wo = tensor(p + "attn_output.weight", {E, E}, true);
    L.bq = tensor(p + "attn_q.bias", {E}, true);
    L.bk = tensor(p + "attn_k.bias", {E}, true);
    L.bv = tensor(p + "attn_v.bias", {E}, true);
    L.bo = tensor(p + "attn_output.bias", {E}, true);
    L.attn_norm_w = vec(p + "attn_output_norm.weight", E);
    L.attn_norm_b = vec(p + "attn_output_norm.bias", E);
    L.w_up = tensor(p + "ffn_up.weight", {E, F}, true);
    L.b_up = tensor(p + "ffn_up.bias", {F}, true);
    L.w_down = tensor(p + "ffn_down.weight", {F, E}, true);
    L.b_down = tensor(p + "ffn_down.bias", {E}, true);
    L.out_norm_w = vec(p + "layer_output_norm.weight", E);
    L.out_norm_b = vec(p + "layer_output_norm.bias", E);
    for (const Tensor* b : {&L.bq, &L.bk, &L.bv, &L.bo, &L.b_up, &L.b_down})
      if (b->type != DType::F32) throw Error("BERT biases must be F32");
    layers_.push_back(L);
  }
  cls_out_ = tensor("cls.output.weight", {-1, -1}, false);
  if (cls_out_) {
    cls_ = tensor("cls.weight", {E, E}, false);
    if (cls_) cls_b_ = tensor("cls.bias", {E}, true);
    // Without the tanh layer, cls.output reads the [CLS] hidden state directly.
    if (cls_out_.cols() != E)
      throw Error("tensor 'cls.output.weight' has " + std::to_string(cls_out_.cols()) +
                  " columns, expected " + std::to_string(E));
    cls_out_b_ = tensor("cls.output.bias", {cls_out_.rows()}, false);
    n_labels_ = static_cast<int>(cls_out_.rows());
    for (const Tensor* b : {&cls_b_, &cls_out_b_})
      if (*b && b->type != DType::F32) throw Error("classifier biases must be F32");
  }
}

void BertModel::release_buffers() {
  for (float* p : {x_, tmp_, q_, k_, v_, att_, up_, pooled_, head_})
    if (p) backend_->free_buffer(p);
  x_ = tmp_ = q_ = k_ = v_ = att_ = up_ = pooled_ = head_ = nullptr;
  capacity_ = seq_capacity_ = 0;
}

void BertModel::ensure_capacity(int n, int n_seqs) {
  if (n <= capacity_ && n_seqs <= seq_capacity_) return;
  release_buffers();
  n = std::max(n, 1);
  n_seqs = std::max(n_seqs, 1);
  Backend& b = *backend_;
  const int64_t N = n, E = config_.n_embd;
  x_ = b.alloc(N * E);
  tmp_ = b.alloc(N * E);
  q_ = b.alloc(N * E);
  k_ = b.alloc(N * E);
  v_ = b.alloc(N * E);
  att_ = b.alloc(N * E);
  up_ = b.alloc(N * config_.n_ff);
  pooled_ = b.alloc(int64_t{n_seqs} * E);
  head_ = b.alloc(int64_t{n_seqs} * E);
  capacity_ = n;
  seq_capacity_ = n_seqs;
}

void BertModel::check(const EncodeBatch& b) const {
  if (b.n_seqs < 1 || !b.seq_start || b.seq_start[0] != 0 || b.seq_start[b.n_seqs] != b.n_tokens)
    throw Error("encoder batch: sequence bounds do not cover the tokens");
  for (int s = 0; s < b.n_seqs; ++s) {
    const int len = b.seq_start[s + 1] - b.seq_start[s];
    if (len < 1) throw Error("encoder batch: an empty sequence");
    if (len > n_positions_)
      throw Error("a sequence of " + std::to_string(len) + " tokens is longer than the model's " +
                  std::to_string(n_positions_) + " positions");
  }
  for (int i = 0; i < b.n_tokens; ++i) {
    if (b.tokens[i] < 0 || b.tokens[i] >= config_.n_vocab)
      throw Error("token id " + std::to_string(b.tokens[i]) + " is outside the vocabulary");
    if (b.token_types && (b.token_types[i] < 0 || b.token_types[i] >= n_token_types_))
      throw Error("token type " + std::to_string(b.token_types[i]) + " is out of range [0, " +
                  std::to_string(n_token_types_) + ")");
  }
}

void BertModel::encode(const EncodeBatch& b) {
  check(b);
  const ModelConfig& c = config_;
  Backend& be = *backend_;
  const int n = b.n_tokens, E = c.n_embd;
  ensure_capacity(n, b.n_seqs);
  pos_.resize(n);
  for (int s = 0; s < b.n_seqs; ++s)
    for (int i = b.seq_start[s]; i < b.seq_start[s + 1]; ++i) pos_[i] = i - b.seq_start[s];

  be.get_rows(tok_embd_, b.tokens, n, x_);       // x: [n, n_embd]
  be.get_rows(pos_embd_, pos_.data(), n, tmp_);  // tmp: [n, n_embd]
  be.add(x_, tmp_, n, E);
  if (type_embd_) {
    if (!b.token_types) types_.assign(n, 0);
    be.get_rows(type_embd_, b.token_types ? b.token_types : types_.data(), n, tmp_);
    be.add(x_, tmp_, n, E);
  }
  be.layer_norm(x_, embd_norm_w_, embd_norm_b_, x_, n, E, eps_);

  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  for (const BertLayer& L : layers_) {
    be.matmul(L.wq, x_, q_, n, &L.bq);  // [n, n_embd] each
    be.matmul(L.wk, x_, k_, n, &L.bk);
    be.matmul(L.wv, x_, v_, n, &L.bv);
    be.attention_packed(q_, k_, v_, att_, c.n_head, c.n_head_kv, c.head_dim, scale, b.seq_start,
                        b.n_seqs);
    be.matmul(L.wo, att_, tmp_, n, &L.bo);  // [n, n_embd]
    be.add(tmp_, x_, n, E);
    be.layer_norm(tmp_, L.attn_norm_w, L.attn_norm_b, x_, n, E, eps_);
    be.matmul(L.w_up, x_, up_, n, &L.b_up);  // [n, n_ff]
    be.gelu(up_, n, c.n_ff);
    be.matmul(L.w_down, up_, tmp_, n, &L.b_down);  // [n, n_embd]
    be.add(tmp_, x_, n, E);
    be.layer_norm(tmp_, L.out_norm_w, L.out_norm_b, x_, n, E, eps_);
  }
}

void BertModel::embed(const EncodeBatch& b, RowPool pool, float* out) {
  encode(b);
  backend_->pool_rows(x_, config_.n_embd, b.seq_start, b.n_seqs, pool, out);
}

void BertModel::classify(const EncodeBatch& b, float* out) {
  if (n_labels_ == 0) throw Error("this model has no classification head");
  encode(b);
  Backend& be = *backend_;
  const int E = config_.n_embd;
  be.pool_rows(x_, E, b.seq_start, b.n_seqs, RowPool::FIRST, pooled_);  // [n_seqs, n_embd]
  const float* h = pooled_;
  if (cls_) {
    be.matmul(cls_, pooled_, head_, b.n_seqs, &cls_b_);
    be.softcap(head_, b.n_seqs, E, 1.0f);  // 1 · tanh(x / 1): tanh
    h = head_;
  }
  be.matmul(cls_out_, h, out, b.n_seqs, cls_out_b_ ? &cls_out_b_ : nullptr);  // [n_seqs, n_labels]
}

}  // namespace

std::unique_ptr<Model> make_bert_model(std::unique_ptr<gguf::Source> file, const std::string& arch,
                                       const ModelOptions& opts) {
  return std::make_unique<BertModel>(std::move(file), arch, opts);
}

}  // namespace tessera
