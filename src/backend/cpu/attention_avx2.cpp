// AVX2 + FMA attention kernels (see AttnScoresFn / AttnAccumFn in quants.h). Compiled with
// -mavx2 -mfma -mf16c and only reached through quants.cpp after the CPU check.
//
// Head dimensions that are not a multiple of 8 take plain loops.
#include <immintrin.h>

#include <cmath>

#include "backend/cpu/quants_impl.h"

namespace tessera::cpu {
namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// <a, b> over n = 8m floats: two accumulators over alternate groups of 8, then a fixed
// reduction, so the result depends on nothing but a and b.
inline float dot8(const float* a, const float* b, int n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int d = 0;
  for (; d + 16 <= n; d += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d), _mm256_loadu_ps(b + d), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d + 8), _mm256_loadu_ps(b + d + 8), acc1);
  }
  if (d < n) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d), _mm256_loadu_ps(b + d), acc0);
  return hsum(_mm256_add_ps(acc0, acc1));
}

void attn_scores(const float* q, int nq, int head_dim, const float* k, int64_t k_stride, int n,
                 float scale, float* scores, int64_t s_stride) {
  if (head_dim % 8 != 0) {
    for (int j = 0; j < n; ++j) {
      for (int h = 0; h < nq; ++h) {
        float s = 0.0f;
        for (int d = 0; d < head_dim; ++d) s += q[h * head_dim + d] * k[j * k_stride + d];
        scores[h * s_stride + j] = s * scale;
      }
    }
    return;
  }
  // Each K row meets all nq query heads while it is in L1.
  for (int j = 0; j < n; ++j) {
    const float* kj = k + j * k_stride;
    for (int h = 0; h < nq; ++h) {
      scores[h * s_stride + j] = dot8(q + static_cast<int64_t>(h) * head_dim, kj, head_dim) * scale;
    }
  }
}

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
        a0 = _mm256_fmadd_ps(wj, _mm256_loadu_ps(vd), a0);
        a1 = _mm256_fmadd_ps(wj, _mm256_loadu_ps(vd + 8), a1);
        a2 = _mm256_fmadd_ps(wj, _mm256_loadu_ps(vd + 16), a2);
        a3 = _mm256_fmadd_ps(wj, _mm256_loadu_ps(vd + 24), a3);
      }
      _mm256_storeu_ps(oh + d, a0);
      _mm256_storeu_ps(oh + d + 8, a1);
      _mm256_storeu_ps(oh + d + 16, a2);
      _mm256_storeu_ps(oh + d + 24, a3);
    }
    for (; d + 8 <= head_dim; d += 8) {
      __m256 a = _mm256_loadu_ps(oh + d);
      for (int j = 0; j < n; ++j) {
        a = _mm256_fmadd_ps(_mm256_broadcast_ss(wh + j), _mm256_loadu_ps(v + j * v_stride + d), a);
      }
      _mm256_storeu_ps(oh + d, a);
    }
    for (; d < head_dim; ++d) {
      float a = oh[d];
      for (int j = 0; j < n; ++j) a = std::fma(wh[j], v[j * v_stride + d], a);
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
