// AVX2 + FMA + F16C tiled flash attention (FlashAttnTiledFn in quants.h) for CPUs without
// AVX-512: the arithmetic of flash_attn_tiled_ref, vectorized across query rows as the
// AVX-512 kernel is (lane r = row r), with 8 lanes: a call's rows are taken 8 at a time.
// Where ggml's exp polynomial would need 2^n outside the normal range (126 < |n| <= 192), a
// vector takes the reference's expf_poly lane by lane. Compiled with -mavx2 -mfma -mf16c and only
// reached through quants.cpp after the CPU check.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/quants_impl.h"
#include "backend/cpu/simd_x86.h"

// Only the explicit fused multiply-adds below may fuse; everything else rounds as written.
#pragma GCC optimize("fp-contract=off")

namespace tessera::cpu {
namespace {

constexpr int kTile = 64;
constexpr int kL = 8;  // lanes: query rows per pass

// expf_poly per lane (ggml's exp polynomial, as the reference).
inline __m256 exp_poly8(__m256 x) {
  __m256 n;
  const __m256 y = expf_poly8(x, &n);
  // n < -192 (masked keys: x = -inf) gives 0 as in the reference; other |n| > 126 lanes
  // need its ldexp, lane by lane.
  const __m256 zero = _mm256_cmp_ps(n, _mm256_set1_ps(-192.0f), _CMP_LT_OQ);
  if (_mm256_movemask_ps(_mm256_andnot_ps(zero, beyond_126(n))) != 0) {
    alignas(32) float t[kL];
    _mm256_store_ps(t, x);
    for (float& v : t) v = expf_poly(v);
    return _mm256_load_ps(t);
  }
  return _mm256_andnot_ps(zero, y);
}

// dst[i] = fp16 src[i] widened, i < n.
inline void widen(const uint16_t* src, float* dst, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i,
                     _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  for (; i < n; ++i) dst[i] = _cvtsh_ss(src[i]);
}

// double(s) + sum, rounded to float, per lane (sum: 8 doubles as two halves).
inline __m256 add_in_double(__m256 s, __m256d sum_lo, __m256d sum_hi) {
  const __m128 lo =
      _mm256_cvtpd_ps(_mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(s)), sum_lo));
  const __m128 hi =
      _mm256_cvtpd_ps(_mm256_add_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(s, 1)), sum_hi));
  return _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1);
}

struct Scratch {
  std::vector<float> k, v;     // [kTile][D]
  std::vector<float> qt, acc;  // per head [D][kL]
  std::vector<float> m, s;     // per head [kL]
  std::vector<float> kq;       // [kTile][kL]
};

// Rows r0 .. r0 + nr - 1 (nr <= kL) of the call.
void tiled_rows(const TiledAttnArgs& a, int r0, int nr, Scratch& sc) {
  const int D = a.head_dim, nq = a.nq;
  sc.qt.resize(static_cast<size_t>(nq) * D * kL);
  sc.acc.assign(static_cast<size_t>(nq) * D * kL, 0.0f);
  sc.m.assign(static_cast<size_t>(nq) * kL, -INFINITY);
  sc.s.assign(static_cast<size_t>(nq) * kL, 0.0f);
  alignas(32) int32_t posv[kL];
  int max_pos = -1;
  for (int r = 0; r < kL; ++r) {
    posv[r] = r < nr ? a.pos[r0 + r] : -1;  // padding lanes see no key
    max_pos = std::max(max_pos, posv[r]);
  }
  const __m256i pos = _mm256_load_si256(reinterpret_cast<const __m256i*>(posv));
  for (int h = 0; h < nq; ++h) {
    float* qt = sc.qt.data() + static_cast<size_t>(h) * D * kL;
    for (int d = 0; d < D; ++d)
      for (int r = 0; r < kL; ++r)
        qt[d * kL + r] = r < nr ? a.q[(r0 + r) * a.q_stride + int64_t{h} * D + d] : 0.0f;
  }
  auto row_of = [&](const uint16_t* base, int j) {
    const int64_t slot = int64_t{a.block_table[j / a.block_size]} * a.block_size + j % a.block_size;
    return base + slot * a.kv_stride;
  };
  const __m256 neg_inf = _mm256_set1_ps(-INFINITY);

  for (int t0 = 0; t0 <= max_pos; t0 += kTile) {
    const int nk = std::min(kTile, max_pos + 1 - t0);  // keys some row sees
    for (int k = 0; k < nk; ++k) {
      widen(row_of(a.k, t0 + k), sc.k.data() + k * D, D);
      widen(row_of(a.v, t0 + k), sc.v.data() + k * D, D);
    }
    for (int h = 0; h < nq; ++h) {
      const float* qt = sc.qt.data() + static_cast<size_t>(h) * D * kL;
      float* acc = sc.acc.data() + static_cast<size_t>(h) * D * kL;
      float* kq = sc.kq.data();
      // Scores, 8 keys at a time (8 independent fma chains over d).
      int k = 0;
      for (; k + 8 <= nk; k += 8) {
        __m256 s[8];
        for (auto& x : s) x = _mm256_setzero_ps();
        for (int d = 0; d < D; ++d) {
          const __m256 qd = _mm256_loadu_ps(qt + d * kL);
          for (int i = 0; i < 8; ++i)
            s[i] = _mm256_fmadd_ps(qd, _mm256_set1_ps(sc.k[(k + i) * D + d]), s[i]);
        }
        for (int i = 0; i < 8; ++i) _mm256_storeu_ps(kq + (k + i) * kL, s[i]);
      }
      for (; k < nk; ++k) {
        __m256 s = _mm256_setzero_ps();
        for (int d = 0; d < D; ++d)
          s = _mm256_fmadd_ps(_mm256_loadu_ps(qt + d * kL), _mm256_set1_ps(sc.k[k * D + d]), s);
        _mm256_storeu_ps(kq + k * kL, s);
      }
      // Scale, mask (row r sees key t0 + k iff t0 + k <= pos[r]), tile maxima.
      const __m256 scale = _mm256_set1_ps(a.scale);
      __m256 tmax = neg_inf;
      for (k = 0; k < kTile; ++k) {
        __m256 x = neg_inf;
        if (k < nk) {
          const __m256 hidden =
              _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(t0 + k), pos));
          x = _mm256_blendv_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(kq + k * kL), scale),
                                             _mm256_setzero_ps()),
                               neg_inf, hidden);
          _mm256_storeu_ps(kq + k * kL, x);
        }
        tmax = _mm256_max_ps(tmax, x);
      }
      const __m256 live = _mm256_cmp_ps(tmax, neg_inf, _CMP_NEQ_OQ);
      if (_mm256_movemask_ps(live) == 0) continue;
      float* mh = sc.m.data() + static_cast<size_t>(h) * kL;
      float* sh = sc.s.data() + static_cast<size_t>(h) * kL;
      const __m256 m_old = _mm256_loadu_ps(mh);
      const __m256 m_new = _mm256_blendv_ps(m_old, _mm256_max_ps(tmax, m_old), live);
      const __m256 grew = _mm256_cmp_ps(m_new, m_old, _CMP_GT_OQ);
      __m256 s_run = _mm256_loadu_ps(sh);
      if (_mm256_movemask_ps(grew) != 0) {
        alignas(32) float ms[kL], mo[kL], mn[kL];
        _mm256_store_ps(mo, m_old);
        _mm256_store_ps(mn, m_new);
        for (int r = 0; r < kL; ++r) ms[r] = mn[r] > mo[r] ? std::exp(mo[r] - mn[r]) : 1.0f;
        const __m256 vms = _mm256_load_ps(ms);
        for (int d = 0; d < D; ++d)
          _mm256_storeu_ps(acc + d * kL, _mm256_mul_ps(_mm256_loadu_ps(acc + d * kL), vms));
        s_run = _mm256_mul_ps(s_run, vms);
      }
      _mm256_storeu_ps(mh, m_new);
      // Weights, block sums (tree over 16 keys), the running sum in double.
      __m256d sum_lo = _mm256_setzero_pd(), sum_hi = _mm256_setzero_pd();
      for (int b = 0; b < 4; ++b) {
        __m256 p[16];
        for (int i = 0; i < 16; ++i) {
          const int kk = 16 * b + i;
          p[i] = _mm256_setzero_ps();
          if (kk < nk) {
            p[i] =
                _mm256_and_ps(live, exp_poly8(_mm256_sub_ps(_mm256_loadu_ps(kq + kk * kL), m_new)));
            _mm256_storeu_ps(kq + kk * kL, p[i]);
          }
        }
        __m256 t[8], u[4];
        for (int l = 0; l < 8; ++l) t[l] = _mm256_add_ps(p[l + 8], p[l]);
        for (int l = 0; l < 4; ++l) u[l] = _mm256_add_ps(t[l + 4], t[l]);
        const __m256 blk = _mm256_add_ps(_mm256_add_ps(u[0], u[2]), _mm256_add_ps(u[1], u[3]));
        sum_lo = _mm256_add_pd(sum_lo, _mm256_cvtps_pd(_mm256_castps256_ps128(blk)));
        sum_hi = _mm256_add_pd(sum_hi, _mm256_cvtps_pd(_mm256_extractf128_ps(blk, 1)));
      }
      _mm256_storeu_ps(sh, _mm256_blendv_ps(s_run, add_in_double(s_run, sum_lo, sum_hi), live));
      // acc[d] = fma(v[k][d], p_k, acc[d]) over the keys in order, 8 dims at a time.
      for (int d0 = 0; d0 < D; d0 += 8) {
        __m256 o[8];
        const int nd = std::min(8, D - d0);
        for (int i = 0; i < nd; ++i) o[i] = _mm256_loadu_ps(acc + (d0 + i) * kL);
        for (k = 0; k < nk; ++k) {
          const __m256 pk = _mm256_loadu_ps(kq + k * kL);
          const float* vk = sc.v.data() + k * D + d0;
          for (int i = 0; i < nd; ++i) o[i] = _mm256_fmadd_ps(_mm256_set1_ps(vk[i]), pk, o[i]);
        }
        for (int i = 0; i < nd; ++i) _mm256_storeu_ps(acc + (d0 + i) * kL, o[i]);
      }
    }
  }
  for (int h = 0; h < nq; ++h) {
    const float* acc = sc.acc.data() + static_cast<size_t>(h) * D * kL;
    const float* sh = sc.s.data() + static_cast<size_t>(h) * kL;
    for (int r = 0; r < nr; ++r) {
      const float inv = sh[r] == 0.0f ? 0.0f : 1.0f / sh[r];
      float* o = a.out + (r0 + r) * a.out_stride + int64_t{h} * D;
      for (int d = 0; d < D; ++d) o[d] = acc[d * kL + r] * inv;
    }
  }
}

void flash_attn_tiled(const TiledAttnArgs& a) {
  thread_local Scratch sc;
  sc.k.resize(static_cast<size_t>(kTile) * a.head_dim);
  sc.v.resize(static_cast<size_t>(kTile) * a.head_dim);
  sc.kq.resize(static_cast<size_t>(kTile) * kL);
  for (int r0 = 0; r0 < a.n_rows; r0 += kL) tiled_rows(a, r0, std::min(kL, a.n_rows - r0), sc);
}

}  // namespace

void fill_avx2_tiled_attention_kernels(KernelTable& t) {
  t.flash_attn_tiled = flash_attn_tiled;
}

}  // namespace tessera::cpu
