// AVX-512 flash-attention kernel (see FlashAttnFn in quants.h) for head dimensions 64, 128
// and 256; other dimensions keep the AVX2 kernel. Compiled with the AVX-512 flags and only
// reached through quants.cpp after the CPU check.
//
// Same arithmetic as flash_attn_ref (quants_ref.cpp), so every level gives the same bits, but
// laid out for throughput. The query heads that share a KV head are processed together (up
// to kMaxGroup<D> at a time, their fp16 accumulators held in registers), so each K and V row
// is widened once per group instead of once per head, and the work is split in phases over
// up to 16 keys:
//   1. scores: the 16-lane partial sums of q·k for every (head, key), then one transposing
//      tree that folds 16 of them at once in the reference's order (l + (l + 8), l + (l + 4),
//      (0 + 2) + (1 + 3));
//   2. the running maximum per head, key by key, giving each key's exp argument;
//   3. the exps, 8 at a time, bit for bit libm's expf (expf8 below);
//   4. the fp16 accumulators, key by key: rescale on a new maximum, then fp16(fma(v, vs, acc)).
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "backend/cpu/quants_impl.h"

// Only the explicit fused multiply-adds below may fuse; everything else rounds as written.
#pragma GCC optimize("fp-contract=off")
// GCC 12 flags the undefined pass-through operand inside _mm512_cvtph_ps as uninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace tessera::cpu {
namespace {

FlashAttnFn g_fallback = nullptr;  // the AVX2 kernel, for other head dimensions

constexpr int kKeys = 16;  // keys per phase sweep: one transposing fold

inline __m512 load_h16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline void store_h16(uint16_t* p, __m512 v) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p),
                      _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
// v rounded to fp16 and widened back (exact).
inline __m512 round_h16(__m512 v) {
  return _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

// Folds 16 vectors of 16 lanes to one sum each, in the reference's tree: lane l + lane l + 8,
// then l + (l + 4), then (0 + 2) + (1 + 3). Returns lane j = the sum of r[j].
inline __m512 fold16(const __m512* r) {
  __m512 a[8], b[4], c[2];
  // a[p]: 128-bit lanes 0-1 hold r[2p]'s 8 sums, lanes 2-3 r[2p + 1]'s.
  for (int p = 0; p < 8; ++p)
    a[p] = _mm512_add_ps(_mm512_shuffle_f32x4(r[2 * p], r[2 * p + 1], 0x44),
                         _mm512_shuffle_f32x4(r[2 * p], r[2 * p + 1], 0xEE));
  // b[q]: 128-bit lane L holds the 4 sums of r[4q + L].
  for (int q = 0; q < 4; ++q)
    b[q] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * q], a[2 * q + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(a[2 * q], a[2 * q + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  // c[w]: 128-bit lane L holds (0 + 2, 1 + 3) of r[8w + L], then of r[8w + 4 + L].
  for (int w = 0; w < 2; ++w)
    c[w] = _mm512_add_ps(_mm512_shuffle_ps(b[2 * w], b[2 * w + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(b[2 * w], b[2 * w + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  // f[4L + k] = the sum of r[L + 4k].
  const __m512 f = _mm512_add_ps(_mm512_shuffle_ps(c[0], c[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_ps(c[0], c[1], _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm512_permutexvar_ps(idx, f);
}

// expf of 8 floats exactly as glibc's expf (the libm the reference calls; x86-64 selects its
// FMA build): x N / ln2 = k + r with N = 32 rounded by the 1.5 * 2^52 shift, 2^(k/N) from a
// 32-entry table, a cubic in r, all in double; then one rounding to float. Checked against
// libm over every negative float (the only arguments attention passes) and sampled elsewhere
// (QuantsSimd.ExpBatchEqualsLibm).
inline __m256 expf8(__m256 x) {
  alignas(64) static const uint64_t kTab[32] = {
      // bits(2^(i/32)) - (i << 47)
      0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
      0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
      0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
      0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
      0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
      0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
      0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
      0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540,
  };
  const __m512i t0 = _mm512_load_si512(kTab), t1 = _mm512_load_si512(kTab + 8);
  const __m512i t2 = _mm512_load_si512(kTab + 16), t3 = _mm512_load_si512(kTab + 24);
  const __m512d shift = _mm512_set1_pd(0x1.8p+52);
  const __m512d inv_ln2_n = _mm512_set1_pd(0x1.71547652b82fep+5);
  const __m512d xd = _mm512_cvtps_pd(x);
  __m512d kd = _mm512_fmadd_pd(inv_ln2_n, xd, shift);
  const __m512i ki = _mm512_castpd_si512(kd);
  kd = _mm512_sub_pd(kd, shift);
  const __m512d r = _mm512_fmsub_pd(inv_ln2_n, xd, kd);
  // Table entry ki % 32: two 16-entry permutes, picked by bit 4.
  const __m512i lo = _mm512_permutex2var_epi64(t0, ki, t1);
  const __m512i hi = _mm512_permutex2var_epi64(t2, ki, t3);
  const __mmask8 upper = _mm512_test_epi64_mask(ki, _mm512_set1_epi64(16));
  const __m512i t =
      _mm512_add_epi64(_mm512_mask_blend_epi64(upper, lo, hi), _mm512_slli_epi64(ki, 47));
  const __m512d z = _mm512_fmadd_pd(_mm512_set1_pd(0x1.c6af84b912394p-20), r,
                                    _mm512_set1_pd(0x1.ebfce50fac4f3p-13));
  const __m512d r2 = _mm512_mul_pd(r, r);
  __m512d y = _mm512_fmadd_pd(_mm512_set1_pd(0x1.62e42ff0c52d6p-6), r, _mm512_set1_pd(1.0));
  y = _mm512_mul_pd(_mm512_fmadd_pd(z, r2, y), _mm512_castsi512_pd(t));
  __m256 f = _mm512_cvtpd_ps(y);
  // Outside the polynomial's range: 0 below log(2^-150), inf above log(2^128), NaN stays NaN.
  f = _mm256_mask_blend_ps(_mm256_cmp_ps_mask(x, _mm256_set1_ps(-0x1.9fe368p6f), _CMP_LT_OQ), f,
                           _mm256_setzero_ps());
  f = _mm256_mask_blend_ps(_mm256_cmp_ps_mask(x, _mm256_set1_ps(0x1.62e42ep6f), _CMP_GT_OQ), f,
                           _mm256_set1_ps(INFINITY));
  return _mm256_mask_blend_ps(_mm256_cmp_ps_mask(x, x, _CMP_UNORD_Q), f, _mm256_add_ps(x, x));
}

void exp_batch(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, expf8(_mm256_loadu_ps(x + i)));
  for (; i < n; ++i) y[i] = std::exp(x[i]);
}

template <int D>
constexpr int kMaxGroup = D == 64    ? 4
                          : D == 128 ? 2
                                     : 1;  // accumulators: 16 registers

// G heads (q16, m, s, acc offset to the first) over n <= kKeys keys.
template <int D, int G>
void fa_keys(const uint16_t* q16, const uint16_t* k, const uint16_t* v, int64_t stride, int n,
             float scale, float* m, float* s, uint16_t* acc) {
  constexpr int kV = D / 16;             // vectors per row
  alignas(64) float part[G][kKeys][16];  // 16-lane partial sums of each (head, key) dot
  alignas(64) float sc[G][kKeys];        // scores
  alignas(64) float ex[G][kKeys];        // exp arguments, then their exps
  bool new_max[G][kKeys];

  // 1. Scores. Per 64-element chunk c, accumulator i takes element 64c + 16i + l in lane l.
  for (int j = 0; j < n; ++j) {
    const uint16_t* kj = k + j * stride;
    __m512 kf[kV];
    for (int i = 0; i < kV; ++i) kf[i] = load_h16(kj + 16 * i);
    for (int h = 0; h < G; ++h) {
      const uint16_t* qh = q16 + h * D;
      __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                     _mm512_setzero_ps()};
      for (int i = 0; i < kV; ++i)
        a[i % 4] = _mm512_fmadd_ps(kf[i], load_h16(qh + 16 * i), a[i % 4]);
      _mm512_store_ps(part[h][j],
                      _mm512_add_ps(_mm512_add_ps(a[0], a[2]), _mm512_add_ps(a[1], a[3])));
    }
  }
  for (int h = 0; h < G; ++h) {
    for (int j = n; j < kKeys; ++j) _mm512_store_ps(part[h][j], _mm512_setzero_ps());
    __m512 r[kKeys];
    for (int j = 0; j < kKeys; ++j) r[j] = _mm512_load_ps(part[h][j]);
    _mm512_store_ps(sc[h], _mm512_mul_ps(fold16(r), _mm512_set1_ps(scale)));
  }

  // 2. Running maxima and exp arguments (heads interleaved: independent chains).
  float mx[G], sh[G];
  for (int h = 0; h < G; ++h) mx[h] = m[h], sh[h] = s[h];
  for (int j = 0; j < n; ++j) {
    for (int h = 0; h < G; ++h) {
      const float x = sc[h][j];
      const bool nm = x > mx[h];
      new_max[h][j] = nm;
      ex[h][j] = nm ? mx[h] - x : x - mx[h];
      mx[h] = nm ? x : mx[h];
    }
  }
  // 3. The exps (bit for bit libm's expf, as the reference), and the running sums.
  for (int h = 0; h < G; ++h) {
    for (int j = n; j < kKeys; ++j) ex[h][j] = 0.0f;
    for (int j = 0; j < kKeys; j += 8) _mm256_store_ps(ex[h] + j, expf8(_mm256_load_ps(ex[h] + j)));
  }
  for (int j = 0; j < n; ++j)
    for (int h = 0; h < G; ++h)
      sh[h] = new_max[h][j] ? std::fma(sh[h], ex[h][j], 1.0f) : std::fma(sh[h], 1.0f, ex[h][j]);
  for (int h = 0; h < G; ++h) m[h] = mx[h], s[h] = sh[h];

  // 4. The fp16 accumulators, held widened in registers.
  __m512 a[G][kV];
  for (int h = 0; h < G; ++h)
    for (int i = 0; i < kV; ++i) a[h][i] = load_h16(acc + h * D + 16 * i);
  for (int j = 0; j < n; ++j) {
    const uint16_t* vj = v + j * stride;
    __m512 vf[kV];
    for (int i = 0; i < kV; ++i) vf[i] = load_h16(vj + 16 * i);
    for (int h = 0; h < G; ++h) {
      __m512 vs;
      if (new_max[h][j]) {
        const __m512 ms = _mm512_set1_ps(ex[h][j]);
        for (int i = 0; i < kV; ++i) a[h][i] = round_h16(_mm512_mul_ps(a[h][i], ms));
        vs = _mm512_set1_ps(1.0f);
      } else {
        vs = _mm512_set1_ps(ex[h][j]);
      }
      for (int i = 0; i < kV; ++i) a[h][i] = round_h16(_mm512_fmadd_ps(vf[i], vs, a[h][i]));
    }
  }
  for (int h = 0; h < G; ++h)
    for (int i = 0; i < kV; ++i) store_h16(acc + h * D + 16 * i, a[h][i]);
}

template <int D>
void fa_fixed(const uint16_t* q16, int nq, const uint16_t* k, const uint16_t* v, int64_t stride,
              int n, float scale, float* m, float* s, uint16_t* acc) {
  constexpr int kG = kMaxGroup<D>;
  using Fn = void (*)(const uint16_t*, const uint16_t*, const uint16_t*, int64_t, int, float,
                      float*, float*, uint16_t*);
  static constexpr Fn kByGroup[4] = {fa_keys<D, 1>,     fa_keys < D, kG >= 2 ? 2 : 1 >, fa_keys < D,
                                     kG >= 3 ? 3 : 1 >, fa_keys < D, kG >= 4 ? 4 : 1 > };
  for (int j0 = 0; j0 < n; j0 += kKeys) {
    const int nj = std::min(kKeys, n - j0);
    for (int h0 = 0; h0 < nq; h0 += kG) {
      const int g = std::min(kG, nq - h0);
      kByGroup[g - 1](q16 + h0 * D, k + j0 * stride, v + j0 * stride, stride, nj, scale, m + h0,
                      s + h0, acc + h0 * D);
    }
  }
}

void flash_attn(const uint16_t* q16, int nq, int head_dim, const uint16_t* k, const uint16_t* v,
                int64_t stride, int n, float scale, float* m, float* s, uint16_t* acc) {
  switch (head_dim) {
    case 64:
      return fa_fixed<64>(q16, nq, k, v, stride, n, scale, m, s, acc);
    case 128:
      return fa_fixed<128>(q16, nq, k, v, stride, n, scale, m, s, acc);
    case 256:
      return fa_fixed<256>(q16, nq, k, v, stride, n, scale, m, s, acc);
    default:
      return g_fallback(q16, nq, head_dim, k, v, stride, n, scale, m, s, acc);
  }
}

}  // namespace

void fill_avx512_attention_kernels(KernelTable& t) {
  g_fallback = t.flash_attn;
  t.flash_attn = flash_attn;
  t.exp = exp_batch;
}

}  // namespace tessera::cpu
