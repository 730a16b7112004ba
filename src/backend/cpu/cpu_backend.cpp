#include "backend/cpu/cpu_backend.h"

#include <cassert>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "backend/cpu/quants.h"

namespace tessera {

std::unique_ptr<Backend> make_cpu_backend(int n_threads) {
  return std::make_unique<cpu::CpuBackend>(n_threads);
}

namespace cpu {

CpuBackend::CpuBackend(int n_threads) : pool_(n_threads), scratch_(pool_.n_threads()) {}

float* CpuBackend::alloc(int64_t n_floats) {
  // 64-byte alignment: whole cache lines, and aligned for AVX-512 loads.
  size_t bytes = (static_cast<size_t>(n_floats) * sizeof(float) + 63) & ~size_t{63};
  void* p = std::aligned_alloc(64, bytes == 0 ? 64 : bytes);
  if (!p) throw std::bad_alloc();
  return static_cast<float*>(p);
}

void CpuBackend::free_buffer(float* p) {
  std::free(p);
}

// ---------------------------------------------------------------- buffers

void CpuBackend::zero(float* x, int n, int d) {
  std::memset(x, 0, sizeof(float) * static_cast<size_t>(n) * d);
}

void CpuBackend::get_rows(const Tensor& emb, const int32_t* ids, int n, float* out) {
  const int64_t d = emb.cols();
  pool_.parallel_for(
      n,
      [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) {
          if (is_repacked(emb.type)) {
            const int r = ids[i] % kRepackRows;
            dequantize_row_r8(emb.type, emb.row(ids[i] - r), r, out + i * d, d);
          } else {
            dequantize_row(emb.type, emb.row(ids[i]), out + i * d, d);
          }
        }
      },
      grain(d));
}

void CpuBackend::rms_norm(const float* x, const float* weight, float* y, int n, int d, float eps) {
  pool_.parallel_for(
      n,
      [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) {
          const float* xi = x + i * d;
          float* yi = y + i * d;
          // As ggml: each square in f32, the squares summed in order in double (ggml_float).
          double sum = 0.0;
          for (int j = 0; j < d; ++j) sum += static_cast<double>(xi[j] * xi[j]);
          const float scale = 1.0f / std::sqrt(static_cast<float>(sum / d) + eps);
          for (int j = 0; j < d; ++j) yi[j] = xi[j] * scale * weight[j];
        }
      },
      grain(d));
}

namespace {

constexpr int kMaxRot = 1024;

// YaRN: blend interpolated and extrapolated angles per dimension pair (ggml's rope_yarn).
float yarn_ramp(float low, float high, int i0) {
  const float y = (i0 / 2 - low) / std::max(0.001f, high - low);
  return 1.0f - std::min(1.0f, std::max(0.0f, y));
}

float yarn_corr_dim(int n_dims, int n_ctx_orig, float n_rot, float base) {
  return n_dims * std::log(n_ctx_orig / (n_rot * 2.0f * static_cast<float>(M_PI))) /
         (2.0f * std::log(base));
}

}  // namespace

void CpuBackend::rope(float* x, int n, int n_head, int head_dim, const int32_t* pos,
                      const RopeParams& p) {
  const int n_rot = p.n_rot;
  assert(n_rot > 0 && n_rot <= kMaxRot && n_rot % 2 == 0 && n_rot <= head_dim);
  const float theta_scale = std::pow(p.freq_base, -2.0f / n_rot);
  float corr[2] = {0.0f, 0.0f};
  if (p.ext_factor != 0.0f) {
    corr[0] =
        std::max(0.0f, std::floor(yarn_corr_dim(n_rot, p.n_ctx_orig, p.beta_fast, p.freq_base)));
    corr[1] = std::min(static_cast<float>(n_rot - 1),
                       std::ceil(yarn_corr_dim(n_rot, p.n_ctx_orig, p.beta_slow, p.freq_base)));
  }
  pool_.parallel_for(
      n,
      [&](int64_t b, int64_t e, int) {
        float cs[kMaxRot];  // cos/sin per pair, shared by all heads of a token
        for (int64_t t = b; t < e; ++t) {
          float theta = static_cast<float>(pos[t]);
          for (int i0 = 0; i0 < n_rot; i0 += 2) {
            const float ff = p.freq_factors ? p.freq_factors[i0 / 2] : 1.0f;
            const float theta_extrap = theta / ff;
            const float theta_interp = p.freq_scale * theta_extrap;
            float th = theta_interp;
            float mscale = p.attn_factor;
            if (p.ext_factor != 0.0f) {
              const float mix = yarn_ramp(corr[0], corr[1], i0) * p.ext_factor;
              th = theta_interp * (1 - mix) + theta_extrap * mix;
              mscale *= 1.0f + 0.1f * std::log(1.0f / p.freq_scale);
            }
            cs[i0] = std::cos(th) * mscale;
            cs[i0 + 1] = std::sin(th) * mscale;
            theta *= theta_scale;
          }
          // The rotation with the fused multiply-adds of llama.cpp's x86 build (GCC contracts
          // ggml's rotate_pairs): fma(x0, c, -(x1 s)) and fma(x0, s, x1 c).
          for (int h = 0; h < n_head; ++h) {
            float* v = x + (t * n_head + h) * static_cast<int64_t>(head_dim);
            for (int i0 = 0; i0 < n_rot; i0 += 2) {
              const float c = cs[i0], s = cs[i0 + 1];
              const int a = p.neox ? i0 / 2 : i0;
              const int bb = p.neox ? i0 / 2 + n_rot / 2 : i0 + 1;
              const float x0 = v[a], x1 = v[bb];
              v[a] = std::fma(x0, c, -(x1 * s));
              v[bb] = std::fma(x0, s, x1 * c);
            }
          }
        }
      },
      grain(int64_t{n_head} * n_rot * 8));
}

void CpuBackend::silu_mul(float* gate, const float* up, int n, int d) {
  const SiluMulFn f = silu_mul_fn();  // row by row: the kernel's tail rule is per row
  pool_.parallel_for(
      n,
      [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) f(gate + i * d, up + i * d, d);
      },
      grain(int64_t{d} * 8));
}

void CpuBackend::add(float* x, const float* y, int n, int d) {
  pool_.parallel_for(
      n,
      [&](int64_t b, int64_t e, int) {
        for (int64_t i = b * d; i < e * d; ++i) x[i] += y[i];
      },
      grain(d));
}

}  // namespace cpu
}  // namespace tessera
