// AVX2 tiles (GemmTileFn in quants.h) of the 32-element block types, up to kGemmTile weight
// rows against up to kGemmTile activation rows, and of the K-quants Q4_K/Q5_K/Q6_K, one row at
// a time against up to kGemmTile activations: for decode (one token against 4 rows), the few
// tokens of a speculative verification and prompt batches on CPUs without AVX-512.
//
// Why tiles pay here: a single-row dot (quants_avx2.cpp) carries one accumulator from block
// to block, so it waits on the fma latency every block, and it unpacks the weight block and
// widens its scales once per activation row. A tile keeps R x C independent accumulators and
// unpacks each weight block once for the C activations.
//
// Invariant: every (row, activation) result is bit-identical to the single-row dot of
// quants_avx2.cpp on the same pair, whatever the tile shape: per pair the same 8-lane
// accumulator, updated block by block with the same operations in the same order, reduced by
// the same hsum; the per-pair scalar chains (Q4_1's min terms, Q4_0's block sums) become
// lanes of a vector whose lane c is that pair's chain, and a lane-wise fma or mul is the
// scalar one bit for bit. Integer block sums are exact, so they may be added in any order.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <utility>

#include "backend/cpu/quants_impl.h"
#include "backend/cpu/simd_x86.h"

namespace tessera::cpu {
namespace {

// Sum of u8 * s8 over 32 bytes, as 8 int32 lanes (the single-row dots' dot_u8s8).
inline __m256i dot_u8s8(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

inline __m256i load32(const int8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

// Calls f(std::integral_constant<int, k>{}) for k = 0 .. N - 1: loops over a tile's
// activations whose index must be a constant (bcast<c>).
template <int N, typename F>
inline void static_for(F&& f) {
  [&]<int... k>(std::integer_sequence<int, k...>) {
    (f(std::integral_constant<int, k>{}), ...);
  }
  (std::make_integer_sequence<int, N>{});
}

// Lane c (< C) = fp16 field `off` bytes into block i of activation row c, widened (the same
// value as h2f of the field); other lanes 0. Built in a register: a store and a wider load
// would stall on store forwarding every block.
template <int C, typename X>
inline __m128 act_field(const X* const* x, int64_t i, size_t off) {
  __m128i h = _mm_setzero_si128();
  static_for<C>([&](auto ci) {
    constexpr int c = decltype(ci)::value;  // the lane: a constant at every optimization level
    h = _mm_insert_epi16(h, load_u16(reinterpret_cast<const uint8_t*>(&x[c][i]) + off), c);
  });
  return _mm_cvtph_ps(h);
}

// Lane c of v in all 8 lanes.
template <int c>
inline __m256 bcast(__m128 v) {
  if constexpr (c == 0) return _mm256_broadcastss_ps(v);
  return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(v), _mm256_set1_epi32(c));
}

template <typename T>
inline const T* row_at(const void* base, size_t stride, int k) {
  return reinterpret_cast<const T*>(static_cast<const uint8_t*>(base) + k * stride);
}

// The R rows of a tile are R interleaved streams, which the hardware prefetchers follow
// poorly (a one-token decode through these tiles read its weights at a fifth of the memory
// bandwidth without this): block i fetches a slice of the rows two tiles ahead, so the R
// rows of the tile after next arrive, slice by slice, while this tile's nb blocks run.
struct Prefetcher {
  const char* next;
  int64_t step;  // bytes per block, a multiple of the 64-byte line
  Prefetcher(const void* w, size_t w_stride, int rows, int64_t nb)
      : next(static_cast<const char*>(w) + 2 * rows * w_stride),
        step((static_cast<int64_t>(rows * w_stride) / std::max<int64_t>(nb, 1) + 63) & ~63) {}
  void operator()(int64_t i) const {
    for (int64_t off = 0; off < step; off += 64) _mm_prefetch(next + i * step + off, _MM_HINT_T0);
  }
};

// The weight side of the 8-lane block kernels, one weight block prepared once for every
// activation of the tile.
// Q4_1: codes 0..15 as unsigned bytes; the dot is u8 x s8 directly.
struct Q4_1Side {
  using W = BlockQ4_1;
  using X = BlockQ8_1;
  struct Prep {
    __m256i q;
  };
  static Prep prep(const W& b) { return {unpack_nibbles(b.qs)}; }
  static __m256i dot(const Prep& p, __m256i y) { return dot_u8s8(p.q, y); }
};
// Q8_0: dot_s8s8(q, y) = u8s8(|q|, sign(y, q)); |q| taken once per block.
struct Q8_0Side {
  using W = BlockQ8_0;
  using X = BlockQ8_0;
  struct Prep {
    __m256i q, qa;
  };
  static Prep prep(const W& b) {
    const __m256i q = load32(b.qs);
    return {q, _mm256_sign_epi8(q, q)};
  }
  static __m256i dot(const Prep& p, __m256i y) { return dot_u8s8(p.qa, _mm256_sign_epi8(y, p.q)); }
};

// Q5_0: its values q - 16 as s8, then as Q8_0.
struct Q5_0Side {
  using W = BlockQ5_0;
  using X = BlockQ8_0;
  using Prep = Q8_0Side::Prep;
  static Prep prep(const W& b) {
    const __m256i q = q5_0_values(b);
    return {q, _mm256_sign_epi8(q, q)};
  }
  static __m256i dot(const Prep& p, __m256i y) { return Q8_0Side::dot(p, y); }
};

// The order of dot_q4_1 / dot_q8_0 / dot_q5_0: per pair, acc = fma(set1(dw * dx), float(the block's
// int32 lanes), acc) block by block, result hsum(acc), plus for Q4_1 the min terms, a chain
// mins = fma(mw, sx, mins) over the blocks. The min chains run in a second pass over the
// blocks (they depend on nothing else), which keeps the main loop's 16 registers for the
// accumulators.
template <typename S, int R, int C>
void tile_8lane(int64_t n, const void* vw, size_t w_stride, const void* vx, size_t x_stride,
                float* y, int64_t y_stride) {
  using W = typename S::W;
  using X = typename S::X;
  constexpr bool kMin = std::is_same_v<S, Q4_1Side>;
  const W* w[R];
  const X* x[C];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) w[r] = row_at<W>(vw, w_stride, r);
#pragma GCC unroll 4
  for (int c = 0; c < C; ++c) x[c] = row_at<X>(vx, x_stride, c);
  __m256 acc[R][C];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  const int64_t nb = n / 32;
  const Prefetcher prefetch(vw, w_stride, R, nb);
  for (int64_t i = 0; i < nb; ++i) {
    prefetch(i);
    const __m128 dx = act_field<C>(x, i, offsetof(X, d));
    typename S::Prep q[R];
    __m128 d[R];  // lane c: dw * dx of pair (r, c), dot's scalar product lane-wise
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      q[r] = S::prep(w[r][i]);
      d[r] = _mm_mul_ps(_mm_set1_ps(h2f(w[r][i].d)), dx);
    }
    static_for<C>([&](auto ci) {
      constexpr int c = decltype(ci)::value;
      const __m256i yq = load32(x[c][i].qs);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r)
        acc[r][c] =
            _mm256_fmadd_ps(bcast<c>(d[r]), _mm256_cvtepi32_ps(S::dot(q[r], yq)), acc[r][c]);
    });
  }
  __m128 mins[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) mins[r] = _mm_setzero_ps();
  if constexpr (kMin) {
    for (int64_t i = 0; i < nb; ++i) {
      const __m128 sx = act_field<C>(x, i, offsetof(X, s));
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) mins[r] = _mm_fmadd_ps(_mm_set1_ps(h2f(w[r][i].m)), sx, mins[r]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    alignas(16) float m[4];
    _mm_store_ps(m, mins[r]);
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c)
      y[c * y_stride + r] = kMin ? hsum(acc[r][c]) + m[c] : hsum(acc[r][c]);
  }
}

template <int R, int C>
void tile_q4_1(int64_t n, const void* w, size_t ws, const void* x, size_t xs, float* y,
               int64_t ys) {
  tile_8lane<Q4_1Side, R, C>(n, w, ws, x, xs, y, ys);
}
template <int R, int C>
void tile_q8_0(int64_t n, const void* w, size_t ws, const void* x, size_t xs, float* y,
               int64_t ys) {
  tile_8lane<Q8_0Side, R, C>(n, w, ws, x, xs, y, ys);
}

template <int R, int C>
void tile_q5_0(int64_t n, const void* w, size_t ws, const void* x, size_t xs, float* y,
               int64_t ys) {
  tile_8lane<Q5_0Side, R, C>(n, w, ws, x, xs, y, ys);
}

// Q4_0 x Q8_0, the order of dot_q4_0: per pair a scalar chain acc = fma(dw * dx,
// float(exact block sum), acc). The exact block sums of four pairs are reduced together into
// the lanes of one i32x4 (one reduction per four pairs), and a lane-wise fma continues each
// pair's chain. Which four: with 1-2 activations (tiles of 4 rows) the R rows of one
// activation, acc[c] holding pair (r, c) in lane r; with 3-4 (tiles of 2 rows) the C
// activations of one row, acc[r] holding pair (r, c) in lane c.
template <int R, int C>
void tile_q4_0(int64_t n, const void* vw, size_t w_stride, const void* vx, size_t x_stride,
               float* y, int64_t y_stride) {
  constexpr bool kLanesAreRows = C <= 2;
  constexpr int kAcc = kLanesAreRows ? C : R;    // accumulators
  constexpr int kLanes = kLanesAreRows ? R : C;  // lanes used in each
  const BlockQ4_0* w[R];
  const BlockQ8_0* x[C];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) w[r] = row_at<BlockQ4_0>(vw, w_stride, r);
#pragma GCC unroll 4
  for (int c = 0; c < C; ++c) x[c] = row_at<BlockQ8_0>(vx, x_stride, c);
  __m128 acc[kAcc];
#pragma GCC unroll 4
  for (int k = 0; k < kAcc; ++k) acc[k] = _mm_setzero_ps();
  const int64_t nb = n / 32;
  const Prefetcher prefetch(vw, w_stride, R, nb);
  for (int64_t i = 0; i < nb; ++i) {
    prefetch(i);
    // The lanes' scales (rows' or activations'), each multiplied by the other side's scale.
    const __m128 lane_scale = kLanesAreRows ? act_field<R>(w, i, offsetof(BlockQ4_0, d))
                                            : act_field<C>(x, i, offsetof(BlockQ8_0, d));
    __m256i q[R], qa[R], yq[C];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      q[r] = _mm256_sub_epi8(unpack_nibbles(w[r][i].qs), _mm256_set1_epi8(8));
      qa[r] = _mm256_sign_epi8(q[r], q[r]);
    }
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) yq[c] = load32(x[c][i].qs);
#pragma GCC unroll 4
    for (int k = 0; k < kAcc; ++k) {
      __m256i s[4];
#pragma GCC unroll 4
      for (int l = 0; l < 4; ++l) {
        const int r = kLanesAreRows ? l : k, c = kLanesAreRows ? k : l;
        s[l] = l < kLanes ? dot_u8s8(qa[r], _mm256_sign_epi8(yq[c], q[r])) : _mm256_setzero_si256();
      }
      const float other = kLanesAreRows ? h2f(x[k][i].d) : h2f(w[k][i].d);
      const __m128 d = _mm_mul_ps(lane_scale, _mm_set1_ps(other));
      acc[k] = _mm_fmadd_ps(d, _mm_cvtepi32_ps(sum4_i32(s[0], s[1], s[2], s[3])), acc[k]);
    }
  }
#pragma GCC unroll 4
  for (int k = 0; k < kAcc; ++k) {
    alignas(16) float v[4];
    _mm_store_ps(v, acc[k]);
#pragma GCC unroll 4
    for (int l = 0; l < kLanes; ++l) {
      const int r = kLanesAreRows ? l : k, c = kLanesAreRows ? k : l;
      y[c * y_stride + r] = v[l];
    }
  }
}

// The K-quant side of a one-row tile: prep unpacks a weight super-block once (quants into 8
// vectors, scales), add folds its products with one activation super-block into that pair's
// accumulators, in the order of the single-row dot.
// Q4_K / Q5_K (dot_q45_k): acc = fma(set1(d * dx), float(the super-block's int32 lanes), acc)
// and a scalar chain mins = fma(dmin * dx, float(min dot), mins); result hsum(acc) - mins.
template <bool kFive, typename Block>
struct Q45KSide {
  using W = Block;
  struct Prep {
    __m256i q[8];
    alignas(16) uint8_t sm[16];  // scales, then mins (k4_unpack)
    float d, dmin;
  };
  static void prep(const W& b, Prep& p) {
    k4_unpack(b.scales, p.sm);
    p.d = h2f(b.d);
    p.dmin = h2f(b.dmin);
    __m256i qh = _mm256_setzero_si256();
    if constexpr (kFive) qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh));
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) k45_unpack_group<kFive>(b.qs, qh, j, &p.q[2 * j], &p.q[2 * j + 1]);
  }
  static void add(const Prep& p, const BlockQ8_K& x, __m256& acc, float& mins) {
    mins = std::fma(p.dmin * x.d, static_cast<float>(k4_min_dot(x.bsums, p.sm + 8)), mins);
    __m256i sumi = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k)
      sumi = _mm256_add_epi32(sumi,
                              _mm256_madd_epi16(_mm256_maddubs_epi16(p.q[k], load32(x.qs + 32 * k)),
                                                _mm256_set1_epi16(p.sm[k])));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(p.d * x.d), _mm256_cvtepi32_ps(sumi), acc);
  }
};
// Q6_K (dot_q6_k): acc = fma(set1(d * dx), float(lanes), acc), then lane 0 += -(d * dx) *
// (the -32 offset's sum); no min chain (mins stays 0, and hsum(acc) - 0 is hsum(acc)).
struct Q6KSide {
  using W = BlockQ6_K;
  struct Prep {
    __m256i q[8], ps[8];  // quants; scale pairs (pair_scales)
    __m256i sc16;         // the 16 scales as i16
    float d;
  };
  static void prep(const W& b, Prep& p) {
    p.sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)));
    p.d = h2f(b.d);
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      q6k_unpack_half(b, h, p.q + 4 * h);
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k)
        p.ps[4 * h + k] = pair_scales(b.scales[8 * h + 2 * k], b.scales[8 * h + 2 * k + 1]);
    }
  }
  static void add(const Prep& p, const BlockQ8_K& x, __m256& acc, float& /*mins*/) {
    const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.bsums));
    const int offset = 32 * hsum_i32(_mm256_madd_epi16(p.sc16, bs));
    __m256i sumi = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k)
      sumi = _mm256_add_epi32(
          sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(p.q[k], load32(x.qs + 32 * k)), p.ps[k]));
    const float d = p.d * x.d;
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    acc = _mm256_add_ps(acc, _mm256_setr_ps(-d * static_cast<float>(offset), 0, 0, 0, 0, 0, 0, 0));
  }
};

// One weight row of a K-quant against C activations, each super-block unpacked once.
template <typename S, int C>
void tile_k_row(int64_t n, const void* vw, const void* vx, size_t x_stride, float* y,
                int64_t y_stride) {
  const auto* w = static_cast<const typename S::W*>(vw);
  const BlockQ8_K* x[C];
#pragma GCC unroll 4
  for (int c = 0; c < C; ++c) x[c] = row_at<BlockQ8_K>(vx, x_stride, c);
  __m256 acc[C];
  float mins[C];
#pragma GCC unroll 4
  for (int c = 0; c < C; ++c) acc[c] = _mm256_setzero_ps(), mins[c] = 0.0f;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    typename S::Prep p;
    S::prep(w[i], p);
    static_for<C>([&](auto ci) {
      constexpr int c = decltype(ci)::value;
      S::add(p, x[c][i], acc[c], mins[c]);
    });
  }
#pragma GCC unroll 4
  for (int c = 0; c < C; ++c) y[c * y_stride] = hsum(acc[c]) - mins[c];
}

// The K-quant tiles go row by row (a super-block's 8 quant registers leave no room for a
// second row's), each row against all nc activations.
using RowFn = void (*)(int64_t, const void*, const void*, size_t, float*, int64_t);
template <RowFn F1, RowFn F2, RowFn F3, RowFn F4>
void run_rows(int64_t n, const void* w, size_t w_stride, int nr, const void* x, size_t x_stride,
              int nc, float* y, int64_t y_stride) {
  static constexpr RowFn kByC[4] = {F1, F2, F3, F4};
  for (int r = 0; r < nr; ++r)
    kByC[nc - 1](n, static_cast<const uint8_t*>(w) + r * w_stride, x, x_stride, y + r, y_stride);
}
template <typename S>
constexpr auto run_k_rows =
    run_rows<tile_k_row<S, 1>, tile_k_row<S, 2>, tile_k_row<S, 3>, tile_k_row<S, 4>>;

using TileFn = void (*)(int64_t, const void*, size_t, const void*, size_t, float*, int64_t);

// A kernel is instantiated for R rows x C activations with at most 8 vector accumulators
// (16 ymm registers hold them, the unpacked weights and an activation): 1-2 activations take
// 4 rows at once, 3-4 take 2. run_tiles runs an nr x nc tile (nr, nc <= kGemmTile) as such
// tiles.
template <TileFn (*Pick)(int r, int c)>
void run_tiles(int64_t n, const void* w, size_t w_stride, int nr, const void* x, size_t x_stride,
               int nc, float* y, int64_t y_stride) {
  const int step = nc <= 2 ? 4 : 2;
  for (int r0 = 0; r0 < nr; r0 += step) {
    const int rr = std::min(step, nr - r0);
    Pick(rr, nc)(n, static_cast<const uint8_t*>(w) + r0 * w_stride, w_stride, x, x_stride, y + r0,
                 y_stride);
  }
}

#define TESSERA_TILE_TABLE(K)                 \
  TileFn pick_##K(int r, int c) {             \
    static constexpr TileFn kTable[4][4] = {  \
        {K<1, 1>, K<1, 2>, K<1, 3>, K<1, 4>}, \
        {K<2, 1>, K<2, 2>, K<2, 3>, K<2, 4>}, \
        {K<3, 1>, K<3, 2>, nullptr, nullptr}, \
        {K<4, 1>, K<4, 2>, nullptr, nullptr}, \
    };                                        \
    return kTable[r - 1][c - 1];              \
  }

TESSERA_TILE_TABLE(tile_q4_1)
TESSERA_TILE_TABLE(tile_q8_0)
TESSERA_TILE_TABLE(tile_q4_0)
TESSERA_TILE_TABLE(tile_q5_0)
#undef TESSERA_TILE_TABLE

inline int slot(DType t) {
  return static_cast<int>(t);
}

}  // namespace

void fill_avx2_gemm_tile_kernels(KernelTable& t) {
  t.gemm_tile[slot(DType::Q4_1)] = run_tiles<pick_tile_q4_1>;
  t.gemm_tile[slot(DType::Q8_0)] = run_tiles<pick_tile_q8_0>;
  t.gemm_tile[slot(DType::Q4_0)] = run_tiles<pick_tile_q4_0>;
  t.gemm_tile[slot(DType::Q5_0)] = run_tiles<pick_tile_q5_0>;
  t.gemm_tile[slot(DType::Q4_K)] = run_k_rows<Q45KSide<false, BlockQ4_K>>;
  t.gemm_tile[slot(DType::Q5_K)] = run_k_rows<Q45KSide<true, BlockQ5_K>>;
  t.gemm_tile[slot(DType::Q6_K)] = run_k_rows<Q6KSide>;
}

}  // namespace tessera::cpu
