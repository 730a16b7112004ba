// Row-interleaved weights (Q4_0_R8, Q8_0_R8; layout in quants.h): the in-place repacking,
// the way back to plain rows, and the scalar reference of the R8 GEMV. Plain C++: repacking
// runs once at load, and the reference is a test oracle.
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "backend/cpu/quants_impl.h"
#include "core/error.h"

namespace tessera::cpu {
namespace {

inline uint32_t word(const void* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// One group block from the 8 rows' block i (rows[r] = row r's blocks), a 4-byte lane at a
// time. Lane j of vector v holds elements 4 * (2v + j % 2) + 0..3 of row j / 2: for Q4_0,
// vectors 0 and 1 (the low nibbles of byte lane j of chunk 0) are elements 0..15, the low
// nibbles of the plain qs; vectors 2 and 3 (chunk 1) are elements 16..31, its high nibbles.
// Either way lane j's two groups are plain bytes 4 * (j % 2) and 4 * (2 + j % 2).
void pack_block(const BlockQ4_0* const* rows, int64_t i, BlockQ4_0R8& out) {
  for (int r = 0; r < 8; ++r) out.d[r] = rows[r][i].d;
  for (int j = 0; j < 16; ++j) {
    const uint8_t* qs = rows[j / 2][i].qs;
    const uint32_t a = word(qs + 4 * (j % 2)), b = word(qs + 4 * (2 + j % 2));
    const uint32_t lo = (a & 0x0F0F0F0Fu) | ((b & 0x0F0F0F0Fu) << 4);
    const uint32_t hi = ((a >> 4) & 0x0F0F0F0Fu) | (b & 0xF0F0F0F0u);
    std::memcpy(out.qs + 4 * j, &lo, 4);
    std::memcpy(out.qs + 64 + 4 * j, &hi, 4);
  }
}

void pack_block(const BlockQ8_0* const* rows, int64_t i, BlockQ8_0R8& out) {
  for (int r = 0; r < 8; ++r) out.d[r] = rows[r][i].d;
  for (int v = 0; v < 4; ++v)
    for (int j = 0; j < 16; ++j) {
      // + 128 on each byte: flipping its top bit.
      const uint32_t w = word(rows[j / 2][i].qs + 4 * (2 * v + j % 2)) ^ 0x80808080u;
      std::memcpy(out.qs + 64 * v + 4 * j, &w, 4);
    }
}

// Code q (Q4_0: 0..15; Q8_0: -128..127) of row r, element e of a group block.
int code_of(const BlockQ4_0R8& g, int r, int e) {
  const int v = e / 8, j = 2 * r + (e / 4) % 2, b = e % 4;
  const uint8_t byte = g.qs[64 * (v / 2) + 4 * j + b];
  return v % 2 == 0 ? byte & 0x0F : byte >> 4;
}

int code_of(const BlockQ8_0R8& g, int r, int e) {
  const int v = e / 8, j = 2 * r + (e / 4) % 2, b = e % 4;
  return static_cast<int>(g.qs[64 * v + 4 * j + b]) - 128;
}

void unpack_block(const BlockQ4_0R8& g, int r, BlockQ4_0& out) {
  out.d = g.d[r];
  for (int e = 0; e < 16; ++e)
    out.qs[e] = static_cast<uint8_t>(code_of(g, r, e) | (code_of(g, r, e + 16) << 4));
}

void unpack_block(const BlockQ8_0R8& g, int r, BlockQ8_0& out) {
  out.d = g.d[r];
  for (int e = 0; e < 32; ++e) out.qs[e] = static_cast<int8_t>(code_of(g, r, e));
}

template <typename B, typename G>
void repack(void* data, int64_t rows, int64_t n) {
  const int64_t nb = n / 32;
  std::vector<B> tmp(8 * nb);  // one group's plain rows
  for (int64_t r0 = 0; r0 < rows; r0 += 8) {
    G* dst = reinterpret_cast<G*>(static_cast<uint8_t*>(data) + r0 * nb * sizeof(B));
    std::memcpy(tmp.data(), dst, tmp.size() * sizeof(B));
    const B* src[8];
    for (int r = 0; r < 8; ++r) src[r] = tmp.data() + r * nb;
    for (int64_t i = 0; i < nb; ++i) pack_block(src, i, dst[i]);
  }
}

template <typename B, typename G>
void unpack_row(const void* group, int r, void* dst, int64_t n) {
  const G* g = static_cast<const G*>(group);
  B* out = static_cast<B*>(dst);
  for (int64_t i = 0; i < n / 32; ++i) unpack_block(g[i], r, out[i]);
}

// The reference GEMV in the plain kernels' float orders (quants_ref.cpp): Q4_0 takes each
// block's exact integer dot whole, acc = fma(dw * dx, float(sum), acc); Q8_0 keeps 8 lanes,
// lane l the exact sum of elements 4l .. 4l + 3, acc_l = fma(dw * dx, float(lane), acc_l),
// reduced at the end as ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)).
template <typename G>
float dot_ref(const G* g, int r, const BlockQ8_0* x, int64_t nb) {
  constexpr bool kQ4 = std::is_same_v<G, BlockQ4_0R8>;
  float acc[8] = {};
  for (int64_t i = 0; i < nb; ++i) {
    const float s = fp16_to_fp32(g[i].d[r]) * fp16_to_fp32(x[i].d);
    if constexpr (kQ4) {
      int32_t sum = 0;
      for (int e = 0; e < 32; ++e) sum += (code_of(g[i], r, e) - 8) * x[i].qs[e];
      acc[0] = std::fma(s, static_cast<float>(sum), acc[0]);
    } else {
      for (int l = 0; l < 8; ++l) {
        int32_t sum = 0;
        for (int e = 4 * l; e < 4 * l + 4; ++e) sum += code_of(g[i], r, e) * x[i].qs[e];
        acc[l] = std::fma(s, static_cast<float>(sum), acc[l]);
      }
    }
  }
  if constexpr (kQ4) return acc[0];
  return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

template <typename G>
void gemv_ref(int64_t n, const void* w, int64_t n_groups, const void* x, size_t x_stride, int nc,
              float* y, int64_t y_stride) {
  const int64_t nb = n / 32;
  for (int64_t gi = 0; gi < n_groups; ++gi) {
    const G* g = static_cast<const G*>(w) + gi * nb;
    for (int c = 0; c < nc; ++c) {
      const auto* xc =
          reinterpret_cast<const BlockQ8_0*>(static_cast<const uint8_t*>(x) + c * x_stride);
      for (int r = 0; r < 8; ++r) y[c * y_stride + 8 * gi + r] = dot_ref(g, r, xc, nb);
    }
  }
}

}  // namespace

DType repacked_type(DType t) {
  switch (t) {
    case DType::Q4_0:
      return DType::Q4_0_R8;
    case DType::Q8_0:
      return DType::Q8_0_R8;
    default:
      throw_unsupported("repacked_type", t);
  }
}

void repack_rows(DType t, void* data, int64_t rows, int64_t n) {
  if (rows % kRepackRows != 0) throw Error("repack_rows: row count is not a multiple of 8");
  if (t == DType::Q4_0) {
    repack<BlockQ4_0, BlockQ4_0R8>(data, rows, n);
  } else if (t == DType::Q8_0) {
    repack<BlockQ8_0, BlockQ8_0R8>(data, rows, n);
  } else {
    throw_unsupported("repack_rows", t);
  }
}

void unpack_row_r8(DType rt, const void* group, int r, void* dst, int64_t n) {
  if (rt == DType::Q4_0_R8) {
    unpack_row<BlockQ4_0, BlockQ4_0R8>(group, r, dst, n);
  } else if (rt == DType::Q8_0_R8) {
    unpack_row<BlockQ8_0, BlockQ8_0R8>(group, r, dst, n);
  } else {
    throw_unsupported("unpack_row_r8", rt);
  }
}

void dequantize_row_r8(DType rt, const void* group, int r, float* dst, int64_t n) {
  const DType t = plain_type(rt);
  // One plain block at a time: exactly what dequantize_row makes of the plain row.
  alignas(64) uint8_t plain[sizeof(BlockQ8_0)];
  const size_t gb = dtype_info(rt).type_size * 8;
  for (int64_t i = 0; i < n / 32; ++i) {
    unpack_row_r8(rt, static_cast<const uint8_t*>(group) + i * gb, r, plain, 32);
    dequantize_row(t, plain, dst + 32 * i, 32);
  }
}

size_t gemv_r8_act_bytes(DType rt, int64_t n) {
  if (rt == DType::Q4_0_R8) return static_cast<size_t>(n / 32) * sizeof(ActR8Q4_0);
  if (rt == DType::Q8_0_R8) return static_cast<size_t>(n / 32) * sizeof(ActR8Q8_0);
  throw_unsupported("gemv_r8_act_bytes", rt);
}

void gemv_r8_ref(DType rt, int64_t n, const void* w, int64_t n_groups, const void* x,
                 size_t x_stride, int nc, float* y, int64_t y_stride) {
  if (rt == DType::Q4_0_R8) {
    gemv_ref<BlockQ4_0R8>(n, w, n_groups, x, x_stride, nc, y, y_stride);
  } else if (rt == DType::Q8_0_R8) {
    gemv_ref<BlockQ8_0R8>(n, w, n_groups, x, x_stride, nc, y, y_stride);
  } else {
    throw_unsupported("gemv_r8_ref", rt);
  }
}

}  // namespace tessera::cpu
