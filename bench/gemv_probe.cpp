// CPU time per row-dot of one kernel on synthetic rows (1536 columns):
//   mode 0: the AVX2 vec_dot, one row at a time;
//   mode 1: the AVX-512 gemm tile, 4 rows x 1 activation (generation);
//   mode 2: the AVX-512 gemm tile, 4 rows x 4 activations (prompts).
// Build: g++ -O3 -std=gnu++20 -Isrc bench/gemv_probe.cpp build/libtessera_core.a -lpthread
// Run:   ./a.out [rows] [unused] [type: 4 = Q4_1, 8 = Q8_0, k = Q4_K]
// With rows large enough (e.g. 100000) the weights stream from DRAM.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/quants.h"
using namespace tessera;
using namespace tessera::cpu;
#include <ctime>
static double cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}
int main(int argc, char** argv) {
  const int64_t cols = 1536, rows = argc > 1 ? atoi(argv[1]) : 1536;
  DType t = argc <= 3           ? DType::Q4_1
            : argv[3][0] == '8' ? DType::Q8_0
            : argv[3][0] == 'k' ? DType::Q4_K
                                : DType::Q4_1;
  DType xt = vec_dot_type(t);
  size_t wb = row_size(t, cols), xb = row_size(xt, cols);
  std::vector<uint8_t> w(wb * rows), x(xb * 4);
  std::mt19937 rng(1);
  for (auto& b : w) b = rng();
  // Finite, normal fp16 scales in every block (random bytes there could be NaN, Inf or
  // subnormal, which some units handle slowly).
  const size_t bsz = dtype_info(t).type_size;
  for (size_t off = 0; off < w.size(); off += bsz) {
    uint16_t h = 0x2c00 + (rng() & 0x3ff);
    memcpy(&w[off], &h, 2);
    if (t != DType::Q8_0) memcpy(&w[off + 2], &h, 2);  // Q4_1 m, Q4_K dmin
  }
  std::vector<float> xf(cols * 4, 0.5f);
  for (int c = 0; c < 4; ++c) quantize_row(xt, xf.data() + c * cols, x.data() + c * xb, cols);
  std::vector<float> y(rows * 4);
  VecDotFn dot = vec_dot_fn_for(t, "avx2");
  GemmTileFn tile = gemm_tile_fn_for(t, "avx512");
  for (int mode = 0; mode < 3; ++mode) {
    int iters = 20000000 / rows;
    auto t0 = cpu_now();
    for (int it = 0; it < iters; ++it) {
      if (mode == 0)
        for (int64_t r = 0; r < rows; ++r) y[r] = dot(cols, &w[r * wb], x.data());
      else if (mode == 1)
        for (int64_t r = 0; r < rows; r += 4)
          tile(cols, &w[r * wb], wb, 4, x.data(), xb, 1, &y[r], rows);
      else
        for (int64_t r = 0; r < rows; r += 4)
          tile(cols, &w[r * wb], wb, 4, x.data(), xb, 4, &y[r], rows);
    }
    double s = cpu_now() - t0;
    double rowdots = double(iters) * rows * (mode == 2 ? 4 : 1);
    printf("mode %d: %.2f ns per row-dot, %.2f GB/s weights\n", mode, s / rowdots * 1e9,
           double(iters) * rows * wb / s / 1e9);
  }
}
