// CPU time of CpuBackend::matmul for the SmolLM2-135M layer shapes (Q4_1 weights).
// Build: g++ -O3 -std=gnu++20 -Isrc bench/matmul_probe.cpp build/libtessera_core.a -lpthread
// Run:   ./a.out [n_tokens] [threads]
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/quants.h"

using namespace tessera;

static double cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 312;
  const int threads = argc > 2 ? std::atoi(argv[2]) : 1;
  cpu::CpuBackend be(threads);
  std::mt19937 rng(1);
  struct Shape {
    int64_t rows, cols;
  };
  const Shape shapes[] = {{576, 576}, {192, 576}, {1536, 576}, {576, 1536}};
  for (const Shape& s : shapes) {
    std::vector<float> wf(s.rows * s.cols);
    std::normal_distribution<float> nd(0.f, 0.02f);
    for (auto& v : wf) v = nd(rng);
    std::vector<uint8_t> wq(row_size(DType::Q4_1, s.cols) * s.rows);
    for (int64_t r = 0; r < s.rows; ++r)
      quant::quantize_row(DType::Q4_1, wf.data() + r * s.cols,
                          wq.data() + r * row_size(DType::Q4_1, s.cols), s.cols);
    Tensor w;
    w.type = DType::Q4_1;
    w.ne[0] = s.cols;
    w.ne[1] = s.rows;
    w.data = wq.data();
    std::vector<float> x(n * s.cols), y(n * s.rows);
    for (auto& v : x) v = nd(rng) * 50;
    be.matmul(w, x.data(), y.data(), n, nullptr);
    const int iters = std::max(1, int(2e9 / (double(n) * s.rows * s.cols)));
    const double t0 = cpu_now();
    for (int i = 0; i < iters; ++i) be.matmul(w, x.data(), y.data(), n, nullptr);
    const double dt = (cpu_now() - t0) / iters;
    std::printf("%5lld x %5lld, n=%d: %8.3f ms  %6.1f GMAC/s (cpu time)\n", (long long)s.rows,
                (long long)s.cols, n, dt * 1e3, double(n) * s.rows * s.cols / dt * 1e-9);
  }
}
