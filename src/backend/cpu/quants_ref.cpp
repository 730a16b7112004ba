// Scalar reference kernels of the CPU backend's attention and activations: the test oracles
// for the SIMD paths and the fallback on CPUs without AVX2. Plain C++ compiled for baseline
// x86-64 (no FMA contraction possible). The row kernels' scalar level is quant/quant.cpp.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cpu/quants_impl.h"
#include "core/error.h"
#include "quant/quant.h"

namespace tessera::cpu {

// ---------------------------------------------------------------- attention

namespace {

// q·k of two fp16 rows in the order of ggml_vec_dot_f16 built for AVX-512 (16-lane vectors,
// 4 accumulators): per 64-element chunk, lane l of accumulator i takes fma(k, q, acc) of
// element 16i + l; the accumulators fold as (0 + 2) + (1 + 3), the 16 lanes as l + (l + 8),
// then l + (l + 4), then (0 + 2) + (1 + 3); elements past the last whole chunk are added in
// double. Products of fp16 values are exact in f32, so only the sums round.
float dot16_ref(const uint16_t* k, const uint16_t* q, int n) {
  const int np = n & ~63;
  float acc[4][16] = {};
  for (int i = 0; i < np; i += 64)
    for (int a = 0; a < 4; ++a)
      for (int l = 0; l < 16; ++l) {
        const int e = i + 16 * a + l;
        acc[a][l] = std::fma(fp16_to_fp32(k[e]), fp16_to_fp32(q[e]), acc[a][l]);
      }
  float r[16];
  for (int l = 0; l < 16; ++l) r[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
  float t[8];
  for (int l = 0; l < 8; ++l) t[l] = r[l] + r[l + 8];
  float u[4];
  for (int l = 0; l < 4; ++l) u[l] = t[l] + t[l + 4];
  double sum = (u[0] + u[2]) + (u[1] + u[3]);
  for (int e = np; e < n; ++e) sum += static_cast<double>(fp16_to_fp32(k[e]) * fp16_to_fp32(q[e]));
  return static_cast<float>(sum);
}

void flash_attn_ref(const uint16_t* q16, int nq, int head_dim, const uint16_t* k, const uint16_t* v,
                    int64_t stride, int n, float scale, float* m, float* s, uint16_t* acc) {
  for (int h = 0; h < nq; ++h) {
    const uint16_t* qh = q16 + static_cast<int64_t>(h) * head_dim;
    uint16_t* ah = acc + static_cast<int64_t>(h) * head_dim;
    for (int j = 0; j < n; ++j) {
      const uint16_t* kj = k + j * stride;
      const uint16_t* vj = v + j * stride;
      const float sc = dot16_ref(kj, qh, head_dim) * scale;
      float ms = 1.0f, vs = 1.0f;
      if (sc > m[h]) {  // new maximum: rescale what was accumulated, this key weighs 1
        ms = std::exp(m[h] - sc);
        m[h] = sc;
        for (int d = 0; d < head_dim; ++d) ah[d] = fp32_to_fp16(fp16_to_fp32(ah[d]) * ms);
      } else {
        vs = std::exp(sc - m[h]);
      }
      for (int d = 0; d < head_dim; ++d)
        ah[d] = fp32_to_fp16(std::fma(fp16_to_fp32(vj[d]), vs, fp16_to_fp32(ah[d])));
      s[h] = std::fma(s[h], ms, vs);
    }
  }
}

// The tiled flash attention of TiledAttnArgs (quants.h), one (row, head) at a time.
void flash_attn_tiled_ref(const TiledAttnArgs& a) {
  const int D = a.head_dim;
  auto row_of = [&](const uint16_t* base, int j) {
    const int64_t slot = int64_t{a.block_table[j / a.block_size]} * a.block_size + j % a.block_size;
    return base + slot * a.kv_stride;
  };
  std::vector<float> acc(D);
  for (int r = 0; r < a.n_rows; ++r) {
    const int n_keys = a.pos[r] + 1;
    for (int h = 0; h < a.nq; ++h) {
      const float* q = a.q + r * a.q_stride + int64_t{h} * D;
      float M = -INFINITY, S = 0.0f;
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int t0 = 0; t0 < n_keys; t0 += 64) {
        float kq[64], p[64];
        float tile_max = -INFINITY;
        for (int k = 0; k < 64; ++k) {
          const int j = t0 + k;
          if (j < n_keys) {
            const uint16_t* kj = row_of(a.k, j);
            float dot = 0.0f;
            for (int d = 0; d < D; ++d) dot = std::fma(q[d], fp16_to_fp32(kj[d]), dot);
            kq[k] = dot * a.scale + 0.0f;
          } else {
            kq[k] = -INFINITY;
          }
          tile_max = tile_max > kq[k] ? tile_max : kq[k];
        }
        if (tile_max == -INFINITY) continue;
        const float m_new = std::fmax(M, tile_max);
        if (m_new > M) {
          const float ms = std::exp(M - m_new);
          for (float& x : acc) x *= ms;
          S *= ms;
          M = m_new;
        }
        double sum = 0.0;
        for (int b = 0; b < 4; ++b) {
          float* pb = p + 16 * b;
          for (int k = 0; k < 16; ++k) pb[k] = expf_poly(kq[16 * b + k] - M);
          float t[8], u[4];
          for (int l = 0; l < 8; ++l) t[l] = pb[l + 8] + pb[l];
          for (int l = 0; l < 4; ++l) u[l] = t[l + 4] + t[l];
          sum += static_cast<double>((u[0] + u[2]) + (u[1] + u[3]));
        }
        S = static_cast<float>(static_cast<double>(S) + sum);
        for (int k = 0; k < 64 && t0 + k < n_keys; ++k) {
          const uint16_t* vj = row_of(a.v, t0 + k);
          for (int d = 0; d < D; ++d) acc[d] = std::fma(fp16_to_fp32(vj[d]), p[k], acc[d]);
        }
      }
      const float inv = S == 0.0f ? 0.0f : 1.0f / S;
      float* o = a.out + r * a.out_stride + int64_t{h} * D;
      for (int d = 0; d < D; ++d) o[d] = acc[d] * inv;
    }
  }
}

void exp_ref(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
}

}  // namespace

// ---------------------------------------------------------------- activations

namespace {

// gate[i] = silu(gate[i]) * up[i] as ggml_vec_swiglu_f32 in llama.cpp's AVX-512 build: the
// first n & ~15 elements (its vector loop) with expf_poly, the rest with the libm expf.
void silu_mul_ref(float* gate, const float* up, int64_t n) {
  const int64_t nv = n & ~int64_t{15};
  for (int64_t i = 0; i < nv; ++i) {
    const float x = gate[i];
    gate[i] = x / (1.0f + expf_poly(0.0f - x)) * up[i];
  }
  for (int64_t i = nv; i < n; ++i) {
    const float x = gate[i];
    gate[i] = x / (1.0f + std::exp(-x)) * up[i];
  }
}

}  // namespace

void fill_ref_kernels(KernelTable& t) {
  t.flash_attn = flash_attn_ref;
  t.exp = exp_ref;
  t.flash_attn_tiled = flash_attn_tiled_ref;
  t.silu_mul = silu_mul_ref;
  // The row functions are the backend-independent scalar ones (quant/quant.h).
  for (int s = 0; s < kNumTypeSlots; ++s) {
    const auto type = static_cast<DType>(s);
    t.dequantize[s] = quant::dequantize_row_fn(type);
    t.quantize[s] = quant::quantize_row_fn(type);
    t.vec_dot[s] = quant::vec_dot_fn(type);
  }
}

void throw_unsupported(const char* what, DType t) {
  const DTypeInfo* info = dtype_info(static_cast<uint32_t>(t));
  throw Error(std::string(what) + ": unsupported type " +
              (info ? info->name : std::to_string(static_cast<uint32_t>(t))));
}

}  // namespace tessera::cpu
