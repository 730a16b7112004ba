// AVX-512 tiled flash attention (FlashAttnTiledFn in quants.h): the arithmetic of
// flash_attn_tiled_ref, vectorized across the query rows: lane r of every vector is row r,
// so each (row, key) score, softmax step and accumulator update is the reference's scalar
// operation in its own lane, and the reference's sequential chains (over d for a score,
// over keys for an output) stay sequential. Keys and values of a 64-key tile are widened
// to f32 once and serve every head of the group. Compiled with the AVX-512 flags.
//
// Scratch per thread: the tile's K and V (64 x D each), and per head the transposed query
// (D x 16), the scores (64 x 16) and the transposed accumulator (D x 16).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/quants_impl.h"

// Only the explicit fused multiply-adds below may fuse; everything else rounds as written.
#pragma GCC optimize("fp-contract=off")
// GCC 12 flags the undefined pass-through operand inside 512-bit conversions as uninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace tessera::cpu {
namespace {

constexpr int kTile = 64;
constexpr int kR = kTiledRows;  // lanes
static_assert(kR == 16);

// ggml's AVX-512 exp (ggml_v_expf): expf_poly per lane.
inline __m512 exp_poly16(__m512 x) {
  const __m512 r = _mm512_set1_ps(0x1.8p23f);
  const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), r);
  const __m512 n = _mm512_sub_ps(z, r);
  const __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.7f7d1cp-20f),
                                    _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e4p-1f), x));
  const __mmask16 big = _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(192), _CMP_GT_OQ);
  const __m512 u = _mm512_mul_ps(b, b);
  const __m512 j = _mm512_fmadd_ps(
      _mm512_fmadd_ps(
          _mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b, _mm512_set1_ps(0x1.573e2ep-5f)), u,
          _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b, _mm512_set1_ps(0x1.fffdb6p-2f))),
      u, _mm512_fmadd_ps(_mm512_set1_ps(0x1.ffffecp-1f), b, _mm512_set1_ps(1.0f)));
  const __m512 res = _mm512_scalef_ps(j, n);
  const __m512 alt = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(n, _mm512_setzero_ps(), _CMP_LE_OQ),
                                          _mm512_set1_ps(INFINITY), _mm512_setzero_ps());
  return _mm512_mask_blend_ps(big, res, alt);
}

// libm's expf per lane (the exp_batch kernel of this level).
inline __m512 exp_libm16(__m512 x, ExpBatchFn e) {
  alignas(64) float t[16];
  _mm512_storeu_ps(t, x);
  e(t, t, 16);
  return _mm512_loadu_ps(t);
}

// dst[i] = fp16 src[i] widened, i < n.
inline void widen(const uint16_t* src, float* dst, int n) {
  int i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(
        dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i))));
  for (; i < n; ++i) dst[i] = _cvtsh_ss(src[i]);
}

struct Scratch {
  std::vector<float> k, v;     // [kTile][D]
  std::vector<float> qt, acc;  // per head [D][kR]
  std::vector<float> m, s;     // per head [kR]
  std::vector<float> kq;       // [kTile][kR]
};

void flash_attn_tiled(const TiledAttnArgs& a) {
  static const ExpBatchFn exp_libm = exp_batch_fn_for("avx512");
  const int D = a.head_dim, nq = a.nq, nr = a.n_rows;
  thread_local Scratch sc;
  sc.k.resize(static_cast<size_t>(kTile) * D);
  sc.v.resize(static_cast<size_t>(kTile) * D);
  sc.qt.resize(static_cast<size_t>(nq) * D * kR);
  sc.acc.assign(static_cast<size_t>(nq) * D * kR, 0.0f);
  sc.m.assign(static_cast<size_t>(nq) * kR, -INFINITY);
  sc.s.assign(static_cast<size_t>(nq) * kR, 0.0f);
  sc.kq.resize(static_cast<size_t>(kTile) * kR);

  alignas(64) int32_t posv[kR];
  int max_pos = -1;
  for (int r = 0; r < kR; ++r) {
    posv[r] = r < nr ? a.pos[r] : -1;  // padding lanes see no key
    max_pos = std::max(max_pos, posv[r]);
  }
  const __m512i pos = _mm512_load_si512(posv);
  for (int h = 0; h < nq; ++h) {
    float* qt = sc.qt.data() + static_cast<size_t>(h) * D * kR;
    for (int d = 0; d < D; ++d)
      for (int r = 0; r < kR; ++r)
        qt[d * kR + r] = r < nr ? a.q[r * a.q_stride + int64_t{h} * D + d] : 0.0f;
  }
  auto row_of = [&](const uint16_t* base, int j) {
    const int64_t slot = int64_t{a.block_table[j / a.block_size]} * a.block_size + j % a.block_size;
    return base + slot * a.kv_stride;
  };
  const __m512 neg_inf = _mm512_set1_ps(-INFINITY);

  for (int t0 = 0; t0 <= max_pos; t0 += kTile) {
    const int nk = std::min(kTile, max_pos + 1 - t0);  // keys some row sees
    for (int k = 0; k < nk; ++k) {
      const uint16_t* kj = row_of(a.k, t0 + k);
      const uint16_t* vj = row_of(a.v, t0 + k);
      widen(kj, sc.k.data() + k * D, D);
      widen(vj, sc.v.data() + k * D, D);
    }
    for (int h = 0; h < nq; ++h) {
      const float* qt = sc.qt.data() + static_cast<size_t>(h) * D * kR;
      float* acc = sc.acc.data() + static_cast<size_t>(h) * D * kR;
      float* kq = sc.kq.data();
      // Scores, 8 keys at a time (8 independent fma chains over d).
      int k = 0;
      for (; k + 8 <= nk; k += 8) {
        __m512 s[8];
        for (auto& x : s) x = _mm512_setzero_ps();
        for (int d = 0; d < D; ++d) {
          const __m512 qd = _mm512_loadu_ps(qt + d * kR);
          for (int i = 0; i < 8; ++i)
            s[i] = _mm512_fmadd_ps(qd, _mm512_set1_ps(sc.k[(k + i) * D + d]), s[i]);
        }
        for (int i = 0; i < 8; ++i) _mm512_storeu_ps(kq + (k + i) * kR, s[i]);
      }
      for (; k < nk; ++k) {
        __m512 s = _mm512_setzero_ps();
        for (int d = 0; d < D; ++d)
          s = _mm512_fmadd_ps(_mm512_loadu_ps(qt + d * kR), _mm512_set1_ps(sc.k[k * D + d]), s);
        _mm512_storeu_ps(kq + k * kR, s);
      }
      // Scale, mask (row r sees key t0 + k iff t0 + k <= pos[r]), tile maxima.
      const __m512 scale = _mm512_set1_ps(a.scale);
      __m512 tmax = neg_inf;
      for (k = 0; k < kTile; ++k) {
        __m512 x = neg_inf;
        if (k < nk) {
          const __mmask16 vis =
              _mm512_cmp_epi32_mask(_mm512_set1_epi32(t0 + k), pos, _MM_CMPINT_LE);
          x = _mm512_mask_blend_ps(vis, neg_inf,
                                   _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(kq + k * kR), scale),
                                                 _mm512_setzero_ps()));
          _mm512_storeu_ps(kq + k * kR, x);
        }
        tmax = _mm512_max_ps(tmax, x);
      }
      const __mmask16 live = _mm512_cmp_ps_mask(tmax, neg_inf, _CMP_NEQ_OQ);
      if (live == 0) continue;
      float* mh = sc.m.data() + static_cast<size_t>(h) * kR;
      float* sh = sc.s.data() + static_cast<size_t>(h) * kR;
      const __m512 m_old = _mm512_loadu_ps(mh);
      // fmaxf: the other operand when one is NaN; tmax is never NaN on live lanes here.
      const __m512 m_new = _mm512_mask_blend_ps(live, m_old, _mm512_max_ps(tmax, m_old));
      const __mmask16 grew = _mm512_cmp_ps_mask(m_new, m_old, _CMP_GT_OQ);
      __m512 s_run = _mm512_loadu_ps(sh);
      if (grew) {
        const __m512 ms = _mm512_mask_blend_ps(grew, _mm512_set1_ps(1.0f),
                                               exp_libm16(_mm512_sub_ps(m_old, m_new), exp_libm));
        for (int d = 0; d < D; ++d)
          _mm512_storeu_ps(acc + d * kR, _mm512_mul_ps(_mm512_loadu_ps(acc + d * kR), ms));
        s_run = _mm512_mul_ps(s_run, ms);
      }
      _mm512_storeu_ps(mh, m_new);
      // Weights, block sums (tree over 16 keys), the running sum in double.
      __m512d sum_lo = _mm512_setzero_pd(), sum_hi = _mm512_setzero_pd();
      for (int b = 0; b < 4; ++b) {
        __m512 p[16];
        for (int i = 0; i < 16; ++i) {
          const int kk = 16 * b + i;
          p[i] = kk < nk
                     ? _mm512_maskz_mov_ps(
                           live, exp_poly16(_mm512_sub_ps(_mm512_loadu_ps(kq + kk * kR), m_new)))
                     : _mm512_setzero_ps();
          if (kk < nk) _mm512_storeu_ps(kq + kk * kR, p[i]);
        }
        __m512 t[8], u[4];
        for (int l = 0; l < 8; ++l) t[l] = _mm512_add_ps(p[l + 8], p[l]);
        for (int l = 0; l < 4; ++l) u[l] = _mm512_add_ps(t[l + 4], t[l]);
        const __m512 blk = _mm512_add_ps(_mm512_add_ps(u[0], u[2]), _mm512_add_ps(u[1], u[3]));
        sum_lo = _mm512_add_pd(sum_lo, _mm512_cvtps_pd(_mm512_castps512_ps256(blk)));
        sum_hi = _mm512_add_pd(
            sum_hi,
            _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(blk), 1))));
      }
      const __m512 s_lo = _mm512_castps256_ps512(
          _mm512_cvtpd_ps(_mm512_add_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(s_run)), sum_lo)));
      const __m256 s_hi = _mm512_cvtpd_ps(_mm512_add_pd(
          _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s_run), 1))),
          sum_hi));
      const __m512 s_new =
          _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(s_lo), _mm256_castps_pd(s_hi), 1));
      _mm512_storeu_ps(sh, _mm512_mask_blend_ps(live, s_run, s_new));
      // acc[d] = fma(v[k][d], p_k, acc[d]) over the keys in order, 16 dims at a time.
      for (int d0 = 0; d0 < D; d0 += 16) {
        __m512 o[16];
        const int nd = std::min(16, D - d0);
        for (int i = 0; i < nd; ++i) o[i] = _mm512_loadu_ps(acc + (d0 + i) * kR);
        for (k = 0; k < nk; ++k) {
          const __m512 pk = _mm512_loadu_ps(kq + k * kR);
          const float* vk = sc.v.data() + k * D + d0;
          for (int i = 0; i < nd; ++i) o[i] = _mm512_fmadd_ps(_mm512_set1_ps(vk[i]), pk, o[i]);
        }
        for (int i = 0; i < nd; ++i) _mm512_storeu_ps(acc + (d0 + i) * kR, o[i]);
      }
    }
  }
  for (int h = 0; h < nq; ++h) {
    const float* acc = sc.acc.data() + static_cast<size_t>(h) * D * kR;
    const float* sh = sc.s.data() + static_cast<size_t>(h) * kR;
    for (int r = 0; r < nr; ++r) {
      const float inv = sh[r] == 0.0f ? 0.0f : 1.0f / sh[r];
      float* o = a.out + r * a.out_stride + int64_t{h} * D;
      for (int d = 0; d < D; ++d) o[d] = acc[d * kR + r] * inv;
    }
  }
}

}  // namespace

void fill_avx512_tiled_attention_kernels(KernelTable& t) {
  t.flash_attn_tiled = flash_attn_tiled;
}

}  // namespace tessera::cpu
