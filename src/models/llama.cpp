// The Llama family: Llama 2/3, SmolLM2, Mistral (arch "llama"/"mistral") and Qwen2
// (arch "qwen2": QKV bias, NeoX RoPE). Pre-norm decoder with RMSNorm, RoPE, GQA
// attention and a SwiGLU feed-forward:
//
//   x = embed(tokens)
//   for each layer:  x += Wo · attn(rope(Wq·n(x)), rope(Wk·n(x)), Wv·n(x))
//                    x += Wdown · (silu(Wgate·n(x)) * Wup·n(x))
//   logits = Wout · n(x)
#include <cmath>
#include <cstring>

#include "backend/cpu/quants.h"
#include "core/error.h"
#include "loader/gguf.h"
#include "loader/hf_source.h"
#include "models/llama.h"
#include "models/weight_quant.h"

namespace tessera {

namespace {

struct LlamaLayer {
  const float* attn_norm;  // [n_embd]
  Tensor wq, wk, wv, wo;   // [n_embd -> q_dim], [n_embd -> kv_dim] x2, [q_dim -> n_embd]
  Tensor bq, bk, bv;       // optional biases (Qwen2)
  const float* ffn_norm;   // [n_embd]
  Tensor w_gate, w_up, w_down;  // [n_embd -> n_ff] x2, [n_ff -> n_embd]
};

class LlamaModel final : public Model {
 public:
  LlamaModel(std::unique_ptr<gguf::Source> file, const std::string& arch, const ModelOptions& opts);
  ~LlamaModel() override { release_buffers(); }
  void forward(const ForwardBatch& batch, KVCache& kv, float* logits) override;

 private:
  Tensor tensor(const std::string& name, std::initializer_list<int64_t> shape, bool required);
  const float* norm_weight(const std::string& name, int64_t n);
  void ensure_capacity(int n_tokens);
  void release_buffers();

  Tensor tok_embd_, output_;
  const float* output_norm_ = nullptr;
  const float* rope_freqs_ = nullptr;
  std::vector<LlamaLayer> layers_;
  std::vector<std::vector<float>> owned_;  // norm weights converted to f32
  std::vector<std::unique_ptr<uint8_t[]>> owned_weights_;  // matrices converted at load time
  std::optional<DType> quant_;                             // ModelOptions::quantization
  int n_threads_ = 0;
  RopeParams rope_;

  int capacity_ = 0;
  // Activation buffers, [capacity_, width] each.
  float *x_ = nullptr, *h_ = nullptr, *q_ = nullptr, *k_ = nullptr, *v_ = nullptr,
        *att_ = nullptr, *gate_ = nullptr, *up_ = nullptr, *tmp_ = nullptr;
};

Tensor LlamaModel::tensor(const std::string& name, std::initializer_list<int64_t> shape,
                          bool required) {
  const gguf::TensorInfo* ti = file_->find_tensor(name);
  if (!ti) {
    if (required) throw Error("model is missing tensor '" + name + "'");
    return {};
  }
  Tensor t;
  t.type = ti->type;
  int i = 0;
  for (int64_t d : shape) {
    if (ti->ne[i] != d)
      throw Error("tensor '" + name + "' has dimension " + std::to_string(i) + " = " +
                  std::to_string(ti->ne[i]) + ", expected " + std::to_string(d));
    t.ne[i++] = d;
  }
  for (; i < 4; ++i)
    if (ti->ne[i] != 1) throw Error("tensor '" + name + "' has too many dimensions");
  t.data = ti->data;
  // Matrices (not norms or biases) may be converted at load time.
  if (quant_ && shape.size() >= 2) t = convert_weight(t, *quant_, owned_weights_, n_threads_);
  weight_stats_.n_params += static_cast<uint64_t>(t.rows() * t.cols());
  weight_stats_.n_bytes += static_cast<uint64_t>(t.rows()) * t.row_bytes();
  return t;
}

const float* LlamaModel::norm_weight(const std::string& name, int64_t n) {
  Tensor t = tensor(name, {n}, true);
  if (t.type == DType::F32) return static_cast<const float*>(t.data);
  if (dtype_info(t.type).block_size != 1 && n % dtype_info(t.type).block_size != 0)
    throw Error("tensor '" + name + "' has an unusable type");
  owned_.emplace_back(n);
  cpu::dequantize_row(t.type, t.data, owned_.back().data(), n);
  return owned_.back().data();
}

LlamaModel::LlamaModel(std::unique_ptr<gguf::Source> file, const std::string& arch,
                       const ModelOptions& opts) {
  file_ = std::move(file);
  config_ = read_model_config(*file_, arch);
  tokenizer_ = Tokenizer::from_gguf(*file_);
  config_.n_vocab = tokenizer_->n_vocab();
  config_.rope_neox = arch == "qwen2" || file_->get_bool(hf::kRopeNeoxKey).value_or(false);
  quant_ = parse_weight_type(opts.quantization);
  n_threads_ = opts.n_threads;
  backend_ = make_cpu_backend(opts.n_threads);

  const ModelConfig& c = config_;
  const int64_t E = c.n_embd, Q = c.q_dim(), KV = c.kv_dim(), F = c.n_ff, V = c.n_vocab;
  tok_embd_ = tensor("token_embd.weight", {E, V}, true);
  output_norm_ = norm_weight("output_norm.weight", E);
  output_ = tensor("output.weight", {E, V}, false);
  if (!output_) output_ = tok_embd_;  // tied embeddings
  if (const gguf::TensorInfo* rf = file_->find_tensor("rope_freqs.weight")) {
    if (rf->type != DType::F32 || rf->n_elements() != c.n_rot / 2)
      throw Error("tensor 'rope_freqs.weight' must be F32 with rope.dimension_count/2 elements");
    rope_freqs_ = reinterpret_cast<const float*>(rf->data);
    weight_stats_.n_params += static_cast<uint64_t>(rf->n_elements());
    weight_stats_.n_bytes += rf->n_bytes;
  }
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    LlamaLayer L;
    L.attn_norm = norm_weight(p + "attn_norm.weight", E);
    L.wq = tensor(p + "attn_q.weight", {E, Q}, true);
    L.wk = tensor(p + "attn_k.weight", {E, KV}, true);
    L.wv = tensor(p + "attn_v.weight", {E, KV}, true);
    L.wo = tensor(p + "attn_output.weight", {Q, E}, true);
    L.bq = tensor(p + "attn_q.bias", {Q}, false);
    L.bk = tensor(p + "attn_k.bias", {KV}, false);
    L.bv = tensor(p + "attn_v.bias", {KV}, false);
    for (const Tensor* b : {&L.bq, &L.bk, &L.bv})
      if (*b && b->type != DType::F32) throw Error("attention biases must be F32");
    L.ffn_norm = norm_weight(p + "ffn_norm.weight", E);
    L.w_gate = tensor(p + "ffn_gate.weight", {E, F}, true);
    L.w_up = tensor(p + "ffn_up.weight", {E, F}, true);
    L.w_down = tensor(p + "ffn_down.weight", {F, E}, true);
    layers_.push_back(L);
  }
  auto bytes = [](const Tensor& t) { return static_cast<uint64_t>(t.rows()) * t.row_bytes(); };
  uint64_t& db = weight_stats_.decode_bytes;
  for (const LlamaLayer& L : layers_)
    for (const Tensor* t : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down})
      db += bytes(*t);
  db += bytes(output_) + tok_embd_.row_bytes();

  rope_.n_rot = c.n_rot;
  rope_.neox = c.rope_neox;
  rope_.freq_base = c.rope_freq_base;
  rope_.freq_scale = 1.0f / c.rope_scaling_factor;
  rope_.ext_factor = c.rope_scaling == RopeScaling::YARN ? 1.0f : 0.0f;
  rope_.beta_fast = c.yarn_beta_fast;
  rope_.beta_slow = c.yarn_beta_slow;
  rope_.n_ctx_orig = c.rope_n_ctx_orig;
  rope_.freq_factors = rope_freqs_;
}

void LlamaModel::release_buffers() {
  for (float* p : {x_, h_, q_, k_, v_, att_, gate_, up_, tmp_})
    if (p) backend_->free_buffer(p);
  x_ = h_ = q_ = k_ = v_ = att_ = gate_ = up_ = tmp_ = nullptr;
  capacity_ = 0;
}

void LlamaModel::ensure_capacity(int n) {
  if (n <= capacity_) return;
  release_buffers();
  const ModelConfig& c = config_;
  Backend& b = *backend_;
  x_ = b.alloc(int64_t{n} * c.n_embd);
  h_ = b.alloc(int64_t{n} * c.n_embd);
  tmp_ = b.alloc(int64_t{n} * c.n_embd);
  q_ = b.alloc(int64_t{n} * c.q_dim());
  att_ = b.alloc(int64_t{n} * c.q_dim());
  k_ = b.alloc(int64_t{n} * c.kv_dim());
  v_ = b.alloc(int64_t{n} * c.kv_dim());
  gate_ = b.alloc(int64_t{n} * c.n_ff);
  up_ = b.alloc(int64_t{n} * c.n_ff);
  capacity_ = n;
}

void LlamaModel::forward(const ForwardBatch& batch, KVCache& kv, float* logits) {
  const ModelConfig& c = config_;
  Backend& be = *backend_;
  const int n = batch.n_tokens;
  ensure_capacity(n);
  for (int i = 0; i < n; ++i)
    if (batch.tokens[i] < 0 || batch.tokens[i] >= c.n_vocab)
      throw Error("token id " + std::to_string(batch.tokens[i]) + " is outside the vocabulary");

  AttentionBatch ab;
  ab.n_tokens = n;
  ab.pos = batch.pos;
  ab.seq_of = batch.seq_of;
  ab.block_tables = batch.block_tables;
  ab.slots = batch.slots;
  ab.block_size = kv.block_size();
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));

  be.get_rows(tok_embd_, batch.tokens, n, x_);  // x: [n, n_embd]
  for (int l = 0; l < c.n_layer; ++l) {
    const LlamaLayer& L = layers_[l];
    // Attention block.
    be.rms_norm(x_, L.attn_norm, h_, n, c.n_embd, c.rms_eps);
    be.matmul(L.wq, h_, q_, n, L.bq ? &L.bq : nullptr);  // q: [n, q_dim]
    be.matmul(L.wk, h_, k_, n, L.bk ? &L.bk : nullptr);  // k: [n, kv_dim]
    be.matmul(L.wv, h_, v_, n, L.bv ? &L.bv : nullptr);  // v: [n, kv_dim]
    be.rope(q_, n, c.n_head, c.head_dim, batch.pos, rope_);
    be.rope(k_, n, c.n_head_kv, c.head_dim, batch.pos, rope_);
    be.store_kv(kv.layer(l), k_, v_, c.kv_dim(), ab);
    be.attention(q_, kv.layer(l), att_, c.n_head, c.n_head_kv, c.head_dim, scale, ab);
    be.matmul(L.wo, att_, tmp_, n, nullptr);  // [n, n_embd]
    be.add(x_, tmp_, n, c.n_embd);
    // Feed-forward block (SwiGLU).
    be.rms_norm(x_, L.ffn_norm, h_, n, c.n_embd, c.rms_eps);
    be.matmul(L.w_gate, h_, gate_, n, nullptr);  // [n, n_ff]
    be.matmul(L.w_up, h_, up_, n, nullptr);      // [n, n_ff]
    be.silu_mul(gate_, up_, n, c.n_ff);
    be.matmul(L.w_down, gate_, tmp_, n, nullptr);  // [n, n_embd]
    be.add(x_, tmp_, n, c.n_embd);
  }
  // Gather the rows that want logits, normalize, project to the vocabulary.
  for (int i = 0; i < batch.n_out; ++i)
    std::memcpy(h_ + int64_t{i} * c.n_embd, x_ + int64_t{batch.out_rows[i]} * c.n_embd,
                sizeof(float) * c.n_embd);
  be.rms_norm(h_, output_norm_, h_, batch.n_out, c.n_embd, c.rms_eps);
  be.matmul(output_, h_, logits, batch.n_out, nullptr);  // [n_out, n_vocab]
}

}  // namespace

std::unique_ptr<Model> make_llama_model(std::unique_ptr<gguf::Source> file, const std::string& arch,
                                        const ModelOptions& opts) {
  return std::make_unique<LlamaModel>(std::move(file), arch, opts);
}

}  // namespace tessera
