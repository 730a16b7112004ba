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

// Element of (vector v, lane j, byte b) of a group block: 4 * (2v + j / 8) + b; its row is j % 8.
constexpr int element_of(int v, int j, int b) {
  return 4 * (2 * v + j / 8) + b;
}

// One group block from the 8 rows' block i (rows[r] = row r's blocks).
void pack_block(const BlockQ4_0* const* rows, int64_t i, BlockQ4_0R8& out) {
  for (int r = 0; r < 8; ++r) out.d[r] = rows[r][i].d;
  auto code = [&](int r, int e) {
    const uint8_t byte = rows[r][i].qs[e % 16];
    return e < 16 ? byte & 0x0F : byte >> 4;
  };
  for (int k = 0; k < 2; ++k)
    for (int j = 0; j < 16; ++j)
      for (int b = 0; b < 4; ++b) {
        const int lo = code(j % 8, element_of(2 * k, j, b));
        const int hi = code(j % 8, element_of(2 * k + 1, j, b));
        out.qs[64 * k + 4 * j + b] = static_cast<uint8_t>(lo | (hi << 4));
      }
}

void pack_block(const BlockQ8_0* const* rows, int64_t i, BlockQ8_0R8& out) {
  for (int r = 0; r < 8; ++r) out.d[r] = rows[r][i].d;
  for (int v = 0; v < 4; ++v)
    for (int j = 0; j < 16; ++j)
      for (int b = 0; b < 4; ++b) {
        const int8_t q = rows[j % 8][i].qs[element_of(v, j, b)];
        out.qs[64 * v + 4 * j + b] = static_cast<uint8_t>(q + 128);
      }
}

// Code q (Q4_0: 0..15; Q8_0: -128..127) of row r, element e of a group block.
int code_of(const BlockQ4_0R8& g, int r, int e) {
  const int v = e / 8, j = r + 8 * ((e / 4) % 2), b = e % 4;
  const uint8_t byte = g.qs[64 * (v / 2) + 4 * j + b];
  return v % 2 == 0 ? byte & 0x0F : byte >> 4;
}

int code_of(const BlockQ8_0R8& g, int r, int e) {
  const int v = e / 8, j = r + 8 * ((e / 4) % 2), b = e % 4;
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
    case DType::Q4_0: return DType::Q4_0_R8;
    case DType::Q8_0: return DType::Q8_0_R8;
    default: throw_unsupported("repacked_type", t);
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
