// Activation panels for the panel GEMM kernels (layout: PanelBlockQ8 in quants_impl.h).
// Plain C++: the packing is a transpose of 4-byte groups, cheap beside the GEMM it feeds
// (each packed block meets every weight row of the matrix).
#include <cstring>
#include <type_traits>

#include "backend/cpu/quants_impl.h"

namespace tessera::cpu {

size_t panel_bytes(DType vec_dot_t, int64_t n) {
  if (vec_dot_t != DType::Q8_0 && vec_dot_t != DType::Q8_1)
    throw_unsupported("panel_bytes", vec_dot_t);
  return static_cast<size_t>(n / 32) * sizeof(PanelBlockQ8);
}

namespace {

template <typename X>
void pack(int64_t n, const void* vx, size_t x_stride, int nc, PanelBlockQ8* dst) {
  const int64_t nb = n / 32;
  std::memset(static_cast<void*>(dst), 0, static_cast<size_t>(nb) * sizeof(PanelBlockQ8));
  for (int c = 0; c < nc; ++c) {
    const X* x = reinterpret_cast<const X*>(static_cast<const uint8_t*>(vx) + c * x_stride);
    for (int64_t i = 0; i < nb; ++i) {
      PanelBlockQ8& p = dst[i];
      for (int g = 0; g < 8; ++g) std::memcpy(p.qs[g][c], x[i].qs + 4 * g, 4);
      int32_t sum = 0;
      for (int k = 0; k < 32; ++k) sum += x[i].qs[k];
      p.d[c] = fp16_to_fp32(x[i].d);
      if constexpr (std::is_same_v<X, BlockQ8_1>) p.s[c] = fp16_to_fp32(x[i].s);
      p.sum[c] = sum;
    }
  }
}

}  // namespace

void pack_panel(DType vec_dot_t, int64_t n, const void* x, size_t x_stride, int nc, void* dst) {
  auto* p = static_cast<PanelBlockQ8*>(dst);
  if (vec_dot_t == DType::Q8_0) {
    pack<BlockQ8_0>(n, x, x_stride, nc, p);
  } else if (vec_dot_t == DType::Q8_1) {
    pack<BlockQ8_1>(n, x, x_stride, nc, p);
  } else {
    throw_unsupported("pack_panel", vec_dot_t);
  }
}

}  // namespace tessera::cpu
