// AVX2 + FMA + F16C flash-attention kernel (see FlashAttnFn in quants.h). Compiled with
// -mavx2 -mfma -mf16c and only reached through quants.cpp after the CPU check.
//
// Same operations in the same order as flash_attn_ref in quants_ref.cpp, so every SIMD level
// gives the same bits: the 16-lane partial sums of the q·k dot are held as two 8-lane halves
// and folded in the reference's tree; the fp16 accumulator is widened, updated with one fma
// and rounded back to fp16 per element, 8 elements at a time.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "backend/cpu/quants_impl.h"

// Only the explicit _mm256_fmadd_ps below may fuse; everything else rounds as written.
#pragma GCC optimize("fp-contract=off")

namespace tessera::cpu {
namespace {

inline __m256 load_h8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline void store_h8(uint16_t* p, __m256 v) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
}
// v rounded to fp16 and widened back (exact).
inline __m256 round_h8(__m256 v) {
  return _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
}

// The flash_attn_ref dot of fp16 rows a and b (widened q in qf), see quants.h.
inline float dot16(const uint16_t* k, const float* qf, int n) {
  const int np = n & ~63;
  // acc[2 * i + half]: accumulator i (0..3) of the 16-lane scheme, lanes 8 * half .. + 7.
  __m256 acc[8];
  for (auto& a : acc) a = _mm256_setzero_ps();
  for (int i = 0; i < np; i += 64) {
    for (int a = 0; a < 8; ++a)
      acc[a] = _mm256_fmadd_ps(load_h8(k + i + 8 * a), _mm256_loadu_ps(qf + i + 8 * a), acc[a]);
  }
  // r = (acc0 + acc2) + (acc1 + acc3) per lane, then lanes l + 8, l + 4, {0,2}/{1,3}, 0 + 1.
  const __m256 r_lo = _mm256_add_ps(_mm256_add_ps(acc[0], acc[4]), _mm256_add_ps(acc[2], acc[6]));
  const __m256 r_hi = _mm256_add_ps(_mm256_add_ps(acc[1], acc[5]), _mm256_add_ps(acc[3], acc[7]));
  const __m256 t = _mm256_add_ps(r_lo, r_hi);
  __m128 u = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
  u = _mm_add_ps(u, _mm_movehl_ps(u, u));
  u = _mm_add_ss(u, _mm_movehdup_ps(u));
  double sum = _mm_cvtss_f32(u);
  for (int i = np; i < n; ++i) sum += static_cast<double>(_cvtsh_ss(k[i]) * qf[i]);
  return static_cast<float>(sum);
}

// flash_attn for a head dimension D known at compile time (a multiple of 8, at most 128):
// per head, the n scores first (they do not depend on the softmax state), then the online
// softmax with the accumulator held in registers as f32 copies of its fp16 values.
template <int D>
void flash_attn_fixed(const uint16_t* q16, int nq, const uint16_t* k, const uint16_t* v,
                      int64_t stride, int n, float scale, float* m, float* s, uint16_t* acc) {
  constexpr int kV = D / 8;
  constexpr int kMaxKeys = 64;  // scores per batch of keys
  float qf[D];
  float sc[kMaxKeys];
  for (int h = 0; h < nq; ++h) {
    const uint16_t* qh = q16 + static_cast<int64_t>(h) * D;
    uint16_t* ah = acc + static_cast<int64_t>(h) * D;
    for (int d = 0; d < D; d += 8) _mm256_storeu_ps(qf + d, load_h8(qh + d));
    __m256 a[kV];
    for (int i = 0; i < kV; ++i) a[i] = load_h8(ah + 8 * i);
    float mh = m[h], sh = s[h];
    for (int j0 = 0; j0 < n; j0 += kMaxKeys) {
      const int nj = std::min(kMaxKeys, n - j0);
      for (int j = 0; j < nj; ++j) sc[j] = dot16(k + (j0 + j) * stride, qf, D) * scale;
      for (int j = 0; j < nj; ++j) {
        const uint16_t* vj = v + (j0 + j) * stride;
        float ms = 1.0f, vs = 1.0f;
        if (sc[j] > mh) {
          ms = std::exp(mh - sc[j]);
          mh = sc[j];
          const __m256 vms = _mm256_set1_ps(ms);
          for (int i = 0; i < kV; ++i) a[i] = round_h8(_mm256_mul_ps(a[i], vms));
        } else {
          vs = std::exp(sc[j] - mh);
        }
        const __m256 vvs = _mm256_set1_ps(vs);
        for (int i = 0; i < kV; ++i)
          a[i] = round_h8(_mm256_fmadd_ps(load_h8(vj + 8 * i), vvs, a[i]));
        sh = std::fma(sh, ms, vs);
      }
    }
    for (int i = 0; i < kV; ++i) store_h8(ah + 8 * i, a[i]);
    m[h] = mh;
    s[h] = sh;
  }
}

void flash_attn(const uint16_t* q16, int nq, int head_dim, const uint16_t* k, const uint16_t* v,
                int64_t stride, int n, float scale, float* m, float* s, uint16_t* acc) {
  if (head_dim == 64) return flash_attn_fixed<64>(q16, nq, k, v, stride, n, scale, m, s, acc);
  if (head_dim == 128) return flash_attn_fixed<128>(q16, nq, k, v, stride, n, scale, m, s, acc);
  constexpr int kMaxDim = 1024;
  float qf[kMaxDim];
  for (int h = 0; h < nq; ++h) {
    const uint16_t* qh = q16 + static_cast<int64_t>(h) * head_dim;
    uint16_t* ah = acc + static_cast<int64_t>(h) * head_dim;
    int d = 0;
    for (; d + 8 <= head_dim; d += 8) _mm256_storeu_ps(qf + d, load_h8(qh + d));
    for (; d < head_dim; ++d) qf[d] = _cvtsh_ss(qh[d]);
    float mh = m[h], sh = s[h];
    for (int j = 0; j < n; ++j) {
      const uint16_t* kj = k + j * stride;
      const uint16_t* vj = v + j * stride;
      const float sc = dot16(kj, qf, head_dim) * scale;
      float ms = 1.0f, vs = 1.0f;
      const bool new_max = sc > mh;
      if (new_max) {
        ms = std::exp(mh - sc);
        mh = sc;
      } else {
        vs = std::exp(sc - mh);
      }
      const __m256 vms = _mm256_set1_ps(ms), vvs = _mm256_set1_ps(vs);
      int e = 0;
      for (; e + 8 <= head_dim; e += 8) {
        __m256 a = load_h8(ah + e);
        if (new_max) a = round_h8(_mm256_mul_ps(a, vms));
        store_h8(ah + e, _mm256_fmadd_ps(load_h8(vj + e), vvs, a));
      }
      for (; e < head_dim; ++e) {
        float a = _cvtsh_ss(ah[e]);
        if (new_max) a = _cvtsh_ss(_cvtss_sh(a * ms, _MM_FROUND_TO_NEAREST_INT));
        ah[e] = _cvtss_sh(std::fma(_cvtsh_ss(vj[e]), vs, a), _MM_FROUND_TO_NEAREST_INT);
      }
      sh = std::fma(sh, ms, vs);
    }
    m[h] = mh;
    s[h] = sh;
  }
}

}  // namespace

void fill_avx2_attention_kernels(KernelTable& t) {
  t.flash_attn = flash_attn;
}

}  // namespace tessera::cpu
