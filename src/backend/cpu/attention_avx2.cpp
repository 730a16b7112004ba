// AVX2 + FMA attention kernels (see AttnScoresFn / AttnAccumFn in quants.h). Compiled with
// -mavx2 -mfma -mf16c and only reached through quants.cpp after the CPU check.
//
// Both kernels do the scalar reference's arithmetic exactly (same operations, same order, no
// fused multiply-add), only several independent sums at once: attention output does not
// move by a bit with the SIMD level, so quantized models' activations (which amplify
// last-bit noise through the Q8 rounding of the next matmul) stay where they were. Head
// dimensions that are not a multiple of 8 take plain loops.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "backend/cpu/quants_impl.h"

// No contraction of the multiplies and adds into FMAs (the reference has none).
#pragma GCC optimize("fp-contract=off")

namespace tessera::cpu {
namespace {

// Transposes the 8x8 block m[0..7] (rows) in place, so m[i] holds column i.
inline void transpose8(__m256 m[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(m[0], m[1]), t1 = _mm256_unpackhi_ps(m[0], m[1]);
  const __m256 t2 = _mm256_unpacklo_ps(m[2], m[3]), t3 = _mm256_unpackhi_ps(m[2], m[3]);
  const __m256 t4 = _mm256_unpacklo_ps(m[4], m[5]), t5 = _mm256_unpackhi_ps(m[4], m[5]);
  const __m256 t6 = _mm256_unpacklo_ps(m[6], m[7]), t7 = _mm256_unpackhi_ps(m[6], m[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 u5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 u7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  m[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  m[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  m[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  m[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  m[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  m[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  m[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  m[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

constexpr int kMaxHeads = 16;  // query heads per call handled in registers/stack

// Vectorized across 8 keys at a time (one key per lane), each lane summing q_h[d] * k_j[d]
// in order of increasing d with a separate multiply and add: the reference's arithmetic,
// bit for bit.
void attn_scores(const float* q, int nq, int head_dim, const float* k, int64_t k_stride, int n,
                 float scale, float* scores, int64_t s_stride) {
  if (head_dim % 8 != 0 || nq > kMaxHeads) {
    for (int j = 0; j < n; ++j) {
      for (int h = 0; h < nq; ++h) {
        float s = 0.0f;
        for (int d = 0; d < head_dim; ++d) s += q[h * head_dim + d] * k[j * k_stride + d];
        scores[h * s_stride + j] = s * scale;
      }
    }
    return;
  }
  const __m256 vscale = _mm256_set1_ps(scale);
  for (int j0 = 0; j0 < n; j0 += 8) {
    const int nj = std::min(8, n - j0);
    const float* rows[8];
    for (int i = 0; i < 8; ++i) rows[i] = k + (j0 + std::min(i, nj - 1)) * k_stride;
    __m256 acc[kMaxHeads];
    for (int h = 0; h < nq; ++h) acc[h] = _mm256_setzero_ps();
    for (int d0 = 0; d0 < head_dim; d0 += 8) {
      __m256 kt[8];
      for (int i = 0; i < 8; ++i) kt[i] = _mm256_loadu_ps(rows[i] + d0);
      transpose8(kt);  // kt[i]: element d0 + i of the 8 keys
      for (int h = 0; h < nq; ++h) {
        const float* qh = q + static_cast<int64_t>(h) * head_dim + d0;
        __m256 a = acc[h];
        for (int i = 0; i < 8; ++i) a = _mm256_add_ps(a, _mm256_mul_ps(_mm256_set1_ps(qh[i]), kt[i]));
        acc[h] = a;
      }
    }
    for (int h = 0; h < nq; ++h) {
      alignas(32) float out[8];
      _mm256_store_ps(out, _mm256_mul_ps(acc[h], vscale));
      std::copy(out, out + nj, scores + h * s_stride + j0);
    }
  }
}

// Vectorized across d; per element the sum runs over j in order with a separate multiply
// and add, as the reference.
void attn_accum(const float* w, int64_t w_stride, int nq, const float* v, int64_t v_stride,
                int n, int head_dim, float* out) {
  for (int h = 0; h < nq; ++h) {
    const float* wh = w + h * w_stride;
    float* oh = out + static_cast<int64_t>(h) * head_dim;
    int d = 0;
    // 32 output floats in registers across all n rows.
    for (; d + 32 <= head_dim; d += 32) {
      __m256 a0 = _mm256_loadu_ps(oh + d), a1 = _mm256_loadu_ps(oh + d + 8);
      __m256 a2 = _mm256_loadu_ps(oh + d + 16), a3 = _mm256_loadu_ps(oh + d + 24);
      const float* vd = v + d;
      for (int j = 0; j < n; ++j, vd += v_stride) {
        const __m256 wj = _mm256_broadcast_ss(wh + j);
        a0 = _mm256_add_ps(a0, _mm256_mul_ps(wj, _mm256_loadu_ps(vd)));
        a1 = _mm256_add_ps(a1, _mm256_mul_ps(wj, _mm256_loadu_ps(vd + 8)));
        a2 = _mm256_add_ps(a2, _mm256_mul_ps(wj, _mm256_loadu_ps(vd + 16)));
        a3 = _mm256_add_ps(a3, _mm256_mul_ps(wj, _mm256_loadu_ps(vd + 24)));
      }
      _mm256_storeu_ps(oh + d, a0);
      _mm256_storeu_ps(oh + d + 8, a1);
      _mm256_storeu_ps(oh + d + 16, a2);
      _mm256_storeu_ps(oh + d + 24, a3);
    }
    for (; d + 8 <= head_dim; d += 8) {
      __m256 a = _mm256_loadu_ps(oh + d);
      for (int j = 0; j < n; ++j) {
        a = _mm256_add_ps(
            a, _mm256_mul_ps(_mm256_broadcast_ss(wh + j), _mm256_loadu_ps(v + j * v_stride + d)));
      }
      _mm256_storeu_ps(oh + d, a);
    }
    for (; d < head_dim; ++d) {
      float a = oh[d];
      for (int j = 0; j < n; ++j) a += wh[j] * v[j * v_stride + d];
      oh[d] = a;
    }
  }
}

}  // namespace

void fill_avx2_attention_kernels(KernelTable& t) {
  t.attn_scores = attn_scores;
  t.attn_accum = attn_accum;
}

}  // namespace tessera::cpu
