// The backend boundary: every numeric operation the model code performs.
//
// Model code (src/models/) calls only these ops, on buffers it got from the backend,
// so a CUDA backend can implement the same interface without touching model code.
// All activations are row-major float32: a buffer "[n, d]" holds n rows of d floats.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "core/tensor.h"

namespace tessera {

// Rotary position embedding, as ggml defines it.
struct RopeParams {
  int n_rot = 0;      // rotated dimensions per head (<= head_dim)
  bool neox = false;  // false: pairs (2i, 2i+1); true: pairs (i, i + n_rot/2)
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;   // 1 / linear or YaRN scaling factor
  float ext_factor = 0.0f;   // YaRN extrapolation mix (0 disables YaRN)
  float attn_factor = 1.0f;  // YaRN magnitude scale
  float beta_fast = 32.0f;
  float beta_slow = 1.0f;
  int n_ctx_orig = 0;                   // YaRN original training context
  const float* freq_factors = nullptr;  // [n_rot/2] divisors of theta (llama3 / longrope) or null
};

// Where one layer's K/V live: one row of kv_dim values per slot;
// slot = block_table[pos / block_size] * block_size + pos % block_size.
// F16 (the default) halves the cache against F32 and is what llama.cpp stores by default,
// so attention sees the same rounded keys and values; F32 gives exact attention (used to
// compare with float32 reference implementations).
struct KVLayer {
  DType type = DType::F16;  // F16 or F32
  void* k = nullptr;        // [n_slots, kv_dim]
  void* v = nullptr;        // [n_slots, kv_dim]
  uint16_t* k16() const { return static_cast<uint16_t*>(k); }
  uint16_t* v16() const { return static_cast<uint16_t*>(v); }
  float* k32() const { return static_cast<float*>(k); }
  float* v32() const { return static_cast<float*>(v); }
};

// The sequences of a batch, for attention. Token t belongs to sequence seq_of[t] and
// sits at position pos[t]; it attends to positions [0, pos[t]] of its own sequence.
// Prompts of at least this many tokens take llama.cpp's tiled attention arithmetic (its CPU
// flash attention switches to it for batches of 64 or more query rows).
constexpr int kTiledPromptMin = 64;

struct AttentionBatch {
  int n_tokens = 0;
  const int32_t* pos = nullptr;                  // [n_tokens]
  const int32_t* seq_of = nullptr;               // [n_tokens]
  const int32_t* const* block_tables = nullptr;  // [n_seqs] -> physical block ids
  const int32_t* slots = nullptr;                // [n_tokens] slot where token t's K/V go
  int block_size = 16;
  // [n_tokens] or null: 1 where the token is a row of a long prompt, which attention over an
  // fp16 cache computes as llama.cpp does batches of 64 or more rows (its tiled path).
  const uint8_t* prompt_tiled = nullptr;
};

// Options of Backend::attention_ext. Zero turns each feature off.
struct AttentionOptions {
  float scale = 1.0f;           // scores = q·k * scale
  int n_window = 0;             // sliding window: token at p sees keys at (p - n_window, p]
  float softcap = 0.0f;         // scores = softcap * tanh(scores / softcap)
  float alibi_max_bias = 0.0f;  // ALiBi: scores += slope(h) * (j - p), slopes as ggml
  // The op's heads as a slice of the model's (tensor parallelism): its head h is the model's
  // head alibi_head0 + h of alibi_n_head, and takes that head's slope. alibi_n_head 0: the
  // op has every head (alibi_head0 must then be 0).
  int alibi_head0 = 0;
  int alibi_n_head = 0;
};

// Whether attention_ext over this cache with these options computes the rows that are not
// prompt_tiled in `attention`'s flash order over the window (see Backend::attention_ext):
// an fp16 cache and a window alone, no soft-capping and no ALiBi.
inline bool ext_takes_flash_order(const KVLayer& kv, const AttentionOptions& o) {
  return kv.type == DType::F16 && o.softcap == 0.0f && o.alibi_max_bias == 0.0f;
}

// The model's head count and the global index of the op's head h for ALiBi's slopes
// (AttentionOptions::alibi_head0 / alibi_n_head); throws tessera::Error when the slice
// does not lie within the model's heads.
struct AlibiHeads {
  int head0 = 0, n_head = 0;
};
AlibiHeads alibi_heads(const AttentionOptions& o, int n_head);

// Which row of each sequence Backend::pool_rows keeps (or their mean).
enum class RowPool { MEAN, FIRST, LAST };

// Options of Backend::moe_route.
struct MoeRouting {
  bool norm_topk = false;           // renormalize the k selected probabilities to sum 1
  bool softmax_after_topk = false;  // softmax over the k selected logits only
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  // Activation buffers (host memory for the CPU backend). Freed by free_buffer.
  virtual float* alloc(int64_t n_floats) = 0;
  virtual void free_buffer(float* p) = 0;
  // x[n, d] = 0
  virtual void zero(float* x, int n, int d) = 0;

  // --- Weights: a backend may keep matrices in its own layout. ---
  // The type the matrix w (plain type, [rows, cols]; experts [n_expert, rows, cols]) has
  // once prepare_weight has rewritten it; w.type when the backend keeps it as it is.
  virtual DType weight_layout(const Tensor& w) const { return w.type; }
  // Rewrites the plain matrix at data ([rows, cols] of type t) in place into the layout
  // weight_layout gives for it.
  virtual void prepare_weight(DType t, void* data, int64_t rows, int64_t cols) {
    (void)t, (void)data, (void)rows, (void)cols;
  }

  // out[i, :] = dequantized row ids[i] of the embedding table   out: [n, emb.cols()]
  virtual void get_rows(const Tensor& emb, const int32_t* ids, int n, float* out) = 0;
  // y[n, w.rows()] = x[n, w.cols()] · wᵀ (+ bias[w.rows()] when bias)
  virtual void matmul(const Tensor& w, const float* x, float* y, int n, const Tensor* bias) = 0;
  // y[n, d] = x / rms(x) * weight     (y may alias x)
  virtual void rms_norm(const float* x, const float* weight, float* y, int n, int d, float eps) = 0;
  // In-place RoPE on x[n, n_head * head_dim] with positions pos[n].
  virtual void rope(float* x, int n, int n_head, int head_dim, const int32_t* pos,
                    const RopeParams& p) = 0;
  // gate[n, d] = silu(gate) * up
  virtual void silu_mul(float* gate, const float* up, int n, int d) = 0;
  // x[n, d] += y[n, d]
  virtual void add(float* x, const float* y, int n, int d) = 0;
  // Write k[n, kv_dim], v[n, kv_dim] into the cache slots of the batch's tokens.
  virtual void store_kv(const KVLayer& kv, const float* k, const float* v, int kv_dim,
                        const AttentionBatch& b) = 0;
  // out[n, n_head*head_dim] = softmax(q·Kᵀ · scale) · V over each token's own sequence;
  // query head h reads KV head h / (n_head / n_head_kv) (GQA / MQA). With an F16 cache the
  // arithmetic is llama.cpp's CPU flash attention (its default): q rounded to fp16, keys
  // taken in position order with an online softmax into an fp16 accumulator. An F32 cache
  // is exact.
  virtual void attention(const float* q, const KVLayer& kv, float* out, int n_head, int n_head_kv,
                         int head_dim, float scale, const AttentionBatch& b) = 0;

  // --- Ops for the architecture families beyond Llama (gemma3, phi3, MoE, ...). ---

  // gate[n, d] = gelu_tanh(gate) * up     (GeGLU, tanh approximation of GELU)
  virtual void gelu_mul(float* gate, const float* up, int n, int d) = 0;
  // x[n, d] *= s
  virtual void scale(float* x, int n, int d, float s) = 0;
  // x[n, d] = cap * tanh(x / cap)     (logit soft-capping)
  virtual void softcap(float* x, int n, int d, float cap) = 0;
  // x[i, :] += w[i] * y[i, :]  for i < n      (w: [n]; sigmoid(w[i]) when sigmoid_w)
  virtual void add_scaled(float* x, const float* y, const float* w, int n, int d,
                          bool sigmoid_w) = 0;
  // Attention as `attention`, with the options in AttentionOptions (sliding window, ALiBi,
  // score soft-capping): a softmax over the window's scores, q and the weights rounded to
  // fp16 where the cache is fp16. Except over an fp16 cache with a window alone (no
  // soft-capping, no ALiBi), for the rows not prompt_tiled (decode steps, verification,
  // short prompts): `attention`'s key-by-key flash order over the window's keys, a fraction
  // of the softmax's cost. Long prompts keep the softmax: Gemma 3 270M's perplexity over the
  // first 4 chunks is then within 0.32% of llama.cpp's figures (tests/e2e/test_gemma3.py),
  // with the tiled flash order 0.79%.
  virtual void attention_ext(const float* q, const KVLayer& kv, float* out, int n_head,
                             int n_head_kv, int head_dim, const AttentionOptions& o,
                             const AttentionBatch& b) = 0;
  // Mixture-of-experts routing. logits: [n, n_expert] router outputs. Picks the top k
  // experts of each row (ties: lower index first) into ids[n, k] and their weights into
  // w[n, k]: softmax over all experts, then the k largest (renormalized to sum 1 when
  // o.norm_topk), or with o.softmax_after_topk, softmax over the k selected logits only.
  virtual void moe_route(const float* logits, int n, int n_expert, int k, const MoeRouting& o,
                         int32_t* ids, float* w) = 0;
  // dst[i, :] = src[rows[i], :]  for i < m            src: [*, d], dst: [m, d]
  virtual void gather_rows(const float* src, const int32_t* rows, int m, int d, float* dst) = 0;
  // dst[rows[i], :] += w[i] * src[i, :]  for i < m   (rows may repeat; applied in order)
  virtual void scatter_add_rows(const float* src, const int32_t* rows, const float* w, int m, int d,
                                float* dst) = 0;

  // --- Ops for encoders (BERT family) and pooled embeddings. ---
  // A packed batch holds n_seqs sequences back to back, with no padding: sequence s is rows
  // [seq_start[s], seq_start[s + 1]) (seq_start: [n_seqs + 1], ascending, seq_start[0] = 0).

  // y[n, d] = (x - mean) / sqrt(var + eps) * weight + bias, per row (biased variance, as
  // torch.nn.LayerNorm). bias may be null; y may alias x.
  virtual void layer_norm(const float* x, const float* weight, const float* bias, float* y, int n,
                          int d, float eps) = 0;
  // x[n, d] = x / 2 * (1 + erf(x / sqrt(2)))     (exact GELU, BERT's "gelu")
  virtual void gelu(float* x, int n, int d) = 0;
  // out[n, n_head*head_dim] = softmax(q·Kᵀ · scale) · V, bidirectional: each token attends
  // to every token of its own sequence of the packed batch, none of the others. q: [n,
  // n_head*head_dim], k and v: [n, n_head_kv*head_dim] (no KV cache); query head h reads KV
  // head h / (n_head / n_head_kv). Exact f32 arithmetic.
  virtual void attention_packed(const float* q, const float* k, const float* v, float* out,
                                int n_head, int n_head_kv, int head_dim, float scale,
                                const int32_t* seq_start, int n_seqs) = 0;
  // out[s, :] = the mean, first or last row of sequence s of x[*, d].    out: [n_seqs, d]
  virtual void pool_rows(const float* x, int d, const int32_t* seq_start, int n_seqs, RowPool kind,
                         float* out) = 0;
};

struct BackendOptions {
  int n_threads = 0;  // <= 0: automatic
  // Let the backend keep matrices in its own faster layouts (weight_layout); false keeps
  // every matrix as stored (--no-repack).
  bool repack = true;
};

// The backends by name: "cpu" (this process's CPU, SIMD kernels, a thread pool) and "ref"
// (the scalar references, one thread: the oracle the others are checked against). Throws
// tessera::Error naming the choices for another name.
std::unique_ptr<Backend> make_backend(const std::string& name, const BackendOptions& o);
// The names make_backend accepts, for help texts.
const char* backend_names();

// Backend for this process's CPU, with n_threads workers (<= 0: automatic).
std::unique_ptr<Backend> make_cpu_backend(int n_threads, bool repack = true);

}  // namespace tessera
