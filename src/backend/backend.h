// The backend boundary: every numeric operation the model code performs.
//
// Model code (src/models/) calls only these ops, on buffers it got from the backend,
// so a CUDA backend can implement the same interface without touching model code.
// All activations are row-major float32: a buffer "[n, d]" holds n rows of d floats.
#pragma once
#include <cstdint>
#include <memory>

#include "core/tensor.h"

namespace tessera {

// Rotary position embedding, as ggml defines it.
struct RopeParams {
  int n_rot = 0;            // rotated dimensions per head (<= head_dim)
  bool neox = false;        // false: pairs (2i, 2i+1); true: pairs (i, i + n_rot/2)
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;  // 1 / linear or YaRN scaling factor
  float ext_factor = 0.0f;  // YaRN extrapolation mix (0 disables YaRN)
  float attn_factor = 1.0f; // YaRN magnitude scale
  float beta_fast = 32.0f;
  float beta_slow = 1.0f;
  int n_ctx_orig = 0;       // YaRN original training context
  const float* freq_factors = nullptr;  // [n_rot/2] divisors of theta (llama3 / longrope) or null
};

// Where one layer's K/V live: one row of kv_dim IEEE half floats (fp16 bits) per slot;
// slot = block_table[pos / block_size] * block_size + pos % block_size. fp16 halves the
// cache against f32 and is what llama.cpp stores by default, so attention sees the same
// rounded keys and values.
struct KVLayer {
  uint16_t* k = nullptr;  // [n_slots, kv_dim] fp16
  uint16_t* v = nullptr;  // [n_slots, kv_dim] fp16
};

// The sequences of a batch, for attention. Token t belongs to sequence seq_of[t] and
// sits at position pos[t]; it attends to positions [0, pos[t]] of its own sequence.
struct AttentionBatch {
  int n_tokens = 0;
  const int32_t* pos = nullptr;                 // [n_tokens]
  const int32_t* seq_of = nullptr;              // [n_tokens]
  const int32_t* const* block_tables = nullptr; // [n_seqs] -> physical block ids
  const int32_t* slots = nullptr;               // [n_tokens] slot where token t's K/V go
  int block_size = 16;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  // Activation buffers (host memory for the CPU backend). Freed by free_buffer.
  virtual float* alloc(int64_t n_floats) = 0;
  virtual void free_buffer(float* p) = 0;

  // out[i, :] = dequantized row ids[i] of the embedding table   out: [n, emb.cols()]
  virtual void get_rows(const Tensor& emb, const int32_t* ids, int n, float* out) = 0;
  // y[n, w.rows()] = x[n, w.cols()] · wᵀ (+ bias[w.rows()] when bias)
  virtual void matmul(const Tensor& w, const float* x, float* y, int n, const Tensor* bias) = 0;
  // y[n, d] = x / rms(x) * weight     (y may alias x)
  virtual void rms_norm(const float* x, const float* weight, float* y, int n, int d,
                        float eps) = 0;
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
  // query head h reads KV head h / (n_head / n_head_kv) (GQA / MQA). Like llama.cpp's
  // exact (non-flash) attention with an fp16 cache, q and the softmax weights are rounded
  // to fp16 before they meet the fp16 keys and values; sums are f32.
  virtual void attention(const float* q, const KVLayer& kv, float* out, int n_head, int n_head_kv,
                         int head_dim, float scale, const AttentionBatch& b) = 0;
};

// Backend for this process's CPU, with n_threads workers (<= 0: automatic).
std::unique_ptr<Backend> make_cpu_backend(int n_threads);

}  // namespace tessera
