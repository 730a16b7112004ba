// CPU implementation of the backend ops. Kernels for the per-type dot products live in
// quants*.cpp; this layer splits work across the thread pool and owns scratch memory
// (grown on demand, reused across calls, so the per-token path does not allocate).
#pragma once
#include <algorithm>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "core/thread_pool.h"

namespace tessera::cpu {

// Items per thread for a loop whose items cost `cost` units (~ a float op each): below
// ~16k units a thread's share is not worth waking it for.
inline int64_t grain(int64_t cost) {
  return std::max<int64_t>(1, 16384 / std::max<int64_t>(cost, 1));
}

class CpuBackend final : public Backend {
 public:
  CpuBackend(int n_threads, bool repack);
  const char* name() const override { return "cpu"; }
  int n_threads() const { return pool_.n_threads(); }

  float* alloc(int64_t n_floats) override;
  void free_buffer(float* p) override;
  void zero(float* x, int n, int d) override;
  // Q4_0 / Q8_0 matrices whose rows come in whole groups of kRepackRows (per expert) go to
  // the row-interleaved R8 layouts (quants.h) where this CPU has their kernels.
  DType weight_layout(const Tensor& w) const override;
  void prepare_weight(DType t, void* data, int64_t rows, int64_t cols) override;

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

  // Ops for the architecture families beyond Llama: cpu_ops_ext.cpp (scalar).
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

  // Ops for encoders and pooled embeddings: cpu_ops_encoder.cpp (scalar).
  void layer_norm(const float* x, const float* weight, const float* bias, float* y, int n, int d,
                  float eps) override;
  void gelu(float* x, int n, int d) override;
  void attention_packed(const float* q, const float* k, const float* v, float* out, int n_head,
                        int n_head_kv, int head_dim, float scale, const int32_t* seq_start,
                        int n_seqs) override;
  void pool_rows(const float* x, int d, const int32_t* seq_start, int n_seqs, RowPool kind,
                 float* out) override;

 private:
  // Attention over an fp16 cache in llama.cpp's flash orders (cpu_attention.cpp). n_window >
  // 0: token at p sees keys (p - n_window, p], and the prompt_tiled rows are left alone.
  void attention_f16(const float* q, const KVLayer& kv, float* out, int n_head, int n_head_kv,
                     int head_dim, float scale, int n_window, const AttentionBatch& b);
  // The prompt_tiled rows of an attention batch (cpu_attention.cpp); returns their number.
  int attention_tiled(const float* q, const KVLayer& kv, float* out, int n_head, int n_head_kv,
                      int head_dim, float scale, const AttentionBatch& b);

  bool repack_;
  ThreadPool pool_;
  std::vector<uint8_t> xq_;                  // activations in the weight's vec dot type
  std::vector<uint8_t> panels_;              // the same, packed for the panel GEMM (+64 to align)
  std::vector<uint8_t> xr_;                  // or prepared for the R8 GEMV (+64 to align)
  std::vector<std::vector<float>> scratch_;  // per-thread attention scores
  std::vector<std::pair<int, int>> tiled_runs_;  // attention_tiled's work: (first token, rows)
};

}  // namespace tessera::cpu
