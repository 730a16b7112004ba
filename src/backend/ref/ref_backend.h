// The reference backend: every op of backend.h written the plain way from its definition,
// single-threaded, with no tiling, panels, repacking or SIMD. The arithmetic whose rounding
// is part of an op's definition (activation quantization, per-type dot products, the fp16
// flash attention orders, SwiGLU, GELU) comes from the scalar references (quant/quant.h,
// and the scalar level of backend/cpu/quants.h), so this backend is an oracle the optimized
// backends are compared against op by op (tests/unit/test_backend_ops.cpp). Slow; not meant for
// serving.
#pragma once
#include <memory>

#include "backend/backend.h"

namespace tessera {

namespace ref {

// Keeps weights in their plain types: matmul and get_rows refuse repacked (*_R8) matrices.
class RefBackend final : public Backend {
 public:
  const char* name() const override { return "ref"; }

  float* alloc(int64_t n_floats) override;
  void free_buffer(float* p) override;
  void zero(float* x, int n, int d) override;

  void get_rows(const Tensor& emb, const int32_t* ids, int n, float* out) override;
  void matmul(const Tensor& w, const float* x, float* y, int n, const Tensor* bias) override;
  void rms_norm(const float* x, const float* weight, float* y, int n, int d, float eps) override;
  void rope(float* x, int n, int n_head, int head_dim, const int32_t* pos,
            const RopeParams& p) override;
  void silu_mul(float* gate, const float* up, int n, int d) override;
  void add(float* x, const float* y, int n, int d) override;
  void store_kv(const KVLayer& kv, const float* k, const float* v, int kv_dim,
                const AttentionBatch& b) override;
  void attention(const float* q, const KVLayer& kv, float* out, int n_head, int n_head_kv,
                 int head_dim, float scale, const AttentionBatch& b) override;

  void gelu_mul(float* gate, const float* up, int n, int d) override;
  void scale(float* x, int n, int d, float s) override;
  void softcap(float* x, int n, int d, float cap) override;
  void add_scaled(float* x, const float* y, const float* w, int n, int d, bool sigmoid_w) override;
  void attention_ext(const float* q, const KVLayer& kv, float* out, int n_head, int n_head_kv,
                     int head_dim, const AttentionOptions& o, const AttentionBatch& b) override;
  void moe_route(const float* logits, int n, int n_expert, int k, const MoeRouting& o, int32_t* ids,
                 float* w) override;
  void gather_rows(const float* src, const int32_t* rows, int m, int d, float* dst) override;
  void scatter_add_rows(const float* src, const int32_t* rows, const float* w, int m, int d,
                        float* dst) override;

  void layer_norm(const float* x, const float* weight, const float* bias, float* y, int n, int d,
                  float eps) override;
  void gelu(float* x, int n, int d) override;
  void attention_packed(const float* q, const float* k, const float* v, float* out, int n_head,
                        int n_head_kv, int head_dim, float scale, const int32_t* seq_start,
                        int n_seqs) override;
  void pool_rows(const float* x, int d, const int32_t* seq_start, int n_seqs, RowPool kind,
                 float* out) override;

 private:
  // Attention over an fp16 cache in llama.cpp's flash orders. n_window > 0: token at p sees
  // keys (p - n_window, p], and the prompt_tiled rows are left alone.
  void attention_f16(const float* q, const KVLayer& kv, float* out, int n_head, int n_head_kv,
                     int head_dim, float scale, int n_window, const AttentionBatch& b);
};

}  // namespace ref

// The reference backend ("ref").
std::unique_ptr<Backend> make_ref_backend();

}  // namespace tessera
