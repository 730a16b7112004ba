// Tests of the row-interleaved weights (Q4_0_R8, Q8_0_R8; quants.h, repack_r8.cpp,
// gemv_r8_avx512.cpp, the R8 panel GEMM):
//  - repacking is lossless: every row unpacks to its original bytes and dequantizes alike;
//  - the scalar reference GEMV and the AVX-512 GEMV equal the plain vec_dot bit for bit, for
//    every token count, group count and block count tried;
//  - the panel GEMM over a repacked group equals the one over the plain rows;
//  - CpuBackend::matmul / get_rows over a repacked tensor equal the plain tensor's;
//  - the guards: plain-row kernels and the GGUF writer refuse the in-memory types.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/quants.h"
#include "core/error.h"
#include "core/tensor.h"
#include "loader/gguf_writer.h"

namespace tessera::cpu {
namespace {

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// `rows` random plain rows of type t (Q4_0 / Q8_0): random codes, finite fp16 scales of
// either sign and magnitude 1e-4..4.
std::vector<uint8_t> random_matrix(DType t, int64_t rows, int64_t n, std::mt19937& rng) {
  std::vector<uint8_t> m(row_size(t, n) * rows);
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& b : m) b = static_cast<uint8_t>(byte(rng));
  std::uniform_real_distribution<float> lg(std::log(1e-4f), std::log(4.f));
  const size_t bs = dtype_info(t).type_size;
  for (size_t off = 0; off < m.size(); off += bs) {
    const uint16_t h = fp32_to_fp16((byte(rng) & 1 ? -1.f : 1.f) * std::exp(lg(rng)));
    std::memcpy(m.data() + off, &h, 2);
  }
  return m;
}

// `count` activation rows quantized to Q8_0, magnitudes varying every 32 elements.
std::vector<uint8_t> random_q8_0_rows(int count, int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<float> lg(std::log(1e-3f), std::log(10.f));
  const size_t xb = row_size(DType::Q8_0, n);
  std::vector<uint8_t> x(xb * count);
  std::vector<float> f(n);
  for (int c = 0; c < count; ++c) {
    float s = 1.f;
    for (int64_t i = 0; i < n; ++i) {
      if (i % 32 == 0) s = std::exp(lg(rng));
      f[i] = s * normal(rng);
    }
    quant::quantize_row(DType::Q8_0, f.data(), x.data() + c * xb, n);
  }
  return x;
}

// The plain kernels the R8 results must equal: the SIMD vec_dot (Q8_0's 8-lane order is the
// SIMD levels'; Q4_0's is also the scalar reference's). nullptr on a CPU without AVX2.
VecDotFn plain_dot(DType t) {
  for (const char* l : {"avx512", "avx2"})
    if (VecDotFn f = vec_dot_fn_for(t, l)) return f;
  return nullptr;
}

const DType kTypes[] = {DType::Q4_0, DType::Q8_0};

TEST(RepackR8, RowsUnpackAndDequantizeToTheOriginal) {
  std::mt19937 rng(7);
  for (DType t : kTypes) {
    const DType rt = repacked_type(t);
    EXPECT_EQ(plain_type(rt), t);
    EXPECT_TRUE(is_repacked(rt));
    EXPECT_EQ(row_size(rt, 4096), row_size(t, 4096));
    for (int64_t n : {32, 96, 576, 4096}) {
      for (int64_t rows : {8, 24}) {
        SCOPED_TRACE(std::string(dtype_name(t)) + " n=" + std::to_string(n) +
                     " rows=" + std::to_string(rows));
        const size_t rb = row_size(t, n);
        const std::vector<uint8_t> plain = random_matrix(t, rows, n, rng);
        std::vector<uint8_t> packed = plain;
        repack_rows(t, packed.data(), rows, n);
        EXPECT_NE(packed, plain);
        std::vector<uint8_t> row(rb);
        std::vector<float> want(n), got(n);
        for (int64_t r = 0; r < rows; ++r) {
          const uint8_t* group = packed.data() + (r / 8) * 8 * rb;
          unpack_row_r8(rt, group, static_cast<int>(r % 8), row.data(), n);
          ASSERT_EQ(0, std::memcmp(row.data(), plain.data() + r * rb, rb)) << "row " << r;
          dequantize_row(t, plain.data() + r * rb, want.data(), n);
          dequantize_row_r8(rt, group, static_cast<int>(r % 8), got.data(), n);
          for (int64_t i = 0; i < n; ++i) ASSERT_EQ(bits(got[i]), bits(want[i])) << r << "," << i;
        }
      }
    }
  }
}

// The reference and (where the CPU has it) the AVX-512 GEMV against vec_dot on the plain rows.
TEST(RepackR8, GemvEqualsVecDotBitExact) {
  std::mt19937 rng(11);
  const GemvR8Fn none = nullptr;
  for (DType t : kTypes) {
    const DType rt = repacked_type(t);
    const VecDotFn dot = plain_dot(t);
    if (dot == nullptr) GTEST_SKIP() << "no SIMD vec_dot on this CPU";
    const GemvR8PrepareFn prep = gemv_r8_prepare_fn_for(rt, "avx512");
    const GemvR8Fn simd = gemv_r8_fn_for(rt, "avx512");
    EXPECT_EQ(prep == nullptr, simd == nullptr);
    EXPECT_EQ(gemv_r8_fn_for(rt, "avx2"), none);
    EXPECT_EQ(gemv_r8_fn_for(t, "avx512"), none);  // plain types have no R8 GEMV
    for (int64_t n : {32, 64, 96, 576, 2048}) {
      for (int n_groups : {1, 3}) {
        SCOPED_TRACE(std::string(dtype_name(t)) + " n=" + std::to_string(n) +
                     " groups=" + std::to_string(n_groups));
        const int64_t rows = 8 * n_groups;
        const size_t rb = row_size(t, n), xb = row_size(DType::Q8_0, n);
        const std::vector<uint8_t> plain = random_matrix(t, rows, n, rng);
        std::vector<uint8_t> packed = plain;
        repack_rows(t, packed.data(), rows, n);
        constexpr int kMaxTokens = 9;
        const std::vector<uint8_t> x = random_q8_0_rows(kMaxTokens, n, rng);
        std::vector<float> want(kMaxTokens * rows);
        for (int c = 0; c < kMaxTokens; ++c)
          for (int64_t r = 0; r < rows; ++r)
            want[c * rows + r] = dot(n, plain.data() + r * rb, x.data() + c * xb);
        // Prepared activations, 64-byte aligned as matmul keeps them.
        const size_t ab = gemv_r8_act_bytes(rt, n);
        std::vector<uint8_t> xp_buf(ab * kMaxTokens + 64);
        uint8_t* xp = xp_buf.data() + (-reinterpret_cast<uintptr_t>(xp_buf.data()) & 63);
        if (prep)
          for (int c = 0; c < kMaxTokens; ++c) prep(n, x.data() + c * xb, xp + c * ab);
        for (int nc = 1; nc <= kMaxTokens; ++nc) {
          const int64_t ys = rows + 1;  // a gap column: nothing written beyond the rows
          std::vector<float> got(nc * ys, -1.0f);
          gemv_r8_ref(rt, n, packed.data(), n_groups, x.data(), xb, nc, got.data(), ys);
          for (int c = 0; c < nc; ++c) {
            for (int64_t r = 0; r < rows; ++r)
              ASSERT_EQ(bits(got[c * ys + r]), bits(want[c * rows + r]))
                  << "ref, " << nc << " tokens: (" << r << "," << c << ")";
            ASSERT_EQ(got[c * ys + rows], -1.0f);
          }
          if (!simd) continue;
          std::fill(got.begin(), got.end(), -1.0f);
          simd(n, packed.data(), n_groups, xp, ab, nc, got.data(), ys);
          for (int c = 0; c < nc; ++c) {
            for (int64_t r = 0; r < rows; ++r)
              ASSERT_EQ(bits(got[c * ys + r]), bits(want[c * rows + r]))
                  << "avx512, " << nc << " tokens: (" << r << "," << c << ")";
            ASSERT_EQ(got[c * ys + rows], -1.0f);
          }
        }
      }
    }
  }
}

// A repacked group through the panel GEMM gives the plain 8-row tile's numbers.
TEST(RepackR8, PanelGemmEqualsPlainPanelGemm) {
  std::mt19937 rng(13);
  for (DType t : kTypes) {
    const DType rt = repacked_type(t);
    const PanelGemmFn packed_gemm = panel_gemm_fn_for(rt, "avx512");
    const PanelGemmFn plain_gemm = panel_gemm_fn_for(t, "avx512");
    if (packed_gemm == nullptr || plain_gemm == nullptr) GTEST_SKIP() << "no AVX-512 on this CPU";
    for (int64_t n : {32, 96, 576, 1536}) {
      SCOPED_TRACE(std::string(dtype_name(t)) + " n=" + std::to_string(n));
      const size_t rb = row_size(t, n), xb = row_size(DType::Q8_0, n);
      const std::vector<uint8_t> plain = random_matrix(t, kPanelRows, n, rng);
      std::vector<uint8_t> packed = plain;
      repack_rows(t, packed.data(), kPanelRows, n);
      constexpr int kTokens = 2 * kPanel;
      const std::vector<uint8_t> x = random_q8_0_rows(kTokens, n, rng);
      const size_t pb = panel_bytes(DType::Q8_0, n);
      std::vector<uint8_t> panel_buf(2 * pb + 64);
      uint8_t* panels = panel_buf.data() + (-reinterpret_cast<uintptr_t>(panel_buf.data()) & 63);
      for (int n_tok : {1, 8, kPanel + 5, kTokens}) {
        for (int p = 0; p * kPanel < n_tok; ++p)
          pack_panel(DType::Q8_0, n, x.data() + p * kPanel * xb, xb,
                     std::min(kPanel, n_tok - p * kPanel), panels + p * pb);
        std::vector<float> want(kTokens * kPanelRows, -1.0f), got(kTokens * kPanelRows, -1.0f);
        plain_gemm(n, plain.data(), rb, kPanelRows, panels, pb, n_tok, want.data(), kPanelRows);
        packed_gemm(n, packed.data(), rb, kPanelRows, panels, pb, n_tok, got.data(), kPanelRows);
        for (size_t i = 0; i < got.size(); ++i)
          ASSERT_EQ(bits(got[i]), bits(want[i])) << n_tok << " tokens, output " << i;
      }
    }
  }
}

// The backend's matmul and get_rows over a repacked tensor (2 threads, with a bias) give the
// plain tensor's numbers for decode-sized and prompt-sized batches.
TEST(RepackR8, BackendMatmulAndGetRowsEqualPlain) {
  std::mt19937 rng(17);
  std::unique_ptr<Backend> be = make_cpu_backend(2);
  for (DType t : kTypes) {
    if (!can_repack(t)) GTEST_SKIP() << "no R8 kernels at this SIMD level";
    const int64_t rows = 72, n = 256;
    const std::vector<uint8_t> plain = random_matrix(t, rows, n, rng);
    std::vector<uint8_t> packed = plain;
    repack_rows(t, packed.data(), rows, n);
    const Tensor wp{t, {n, rows, 1, 1}, plain.data()};
    const Tensor wr{repacked_type(t), {n, rows, 1, 1}, packed.data()};
    std::vector<float> bias(rows);
    for (int64_t r = 0; r < rows; ++r) bias[r] = 0.25f * static_cast<float>(r % 5) - 0.5f;
    const Tensor b{DType::F32, {rows, 1, 1, 1}, bias.data()};
    std::normal_distribution<float> normal(0.f, 1.f);
    for (int n_tok : {1, 2, 4, 5, 7, 8, 19}) {
      SCOPED_TRACE(std::string(dtype_name(t)) + " tokens=" + std::to_string(n_tok));
      std::vector<float> x(n_tok * n);
      for (float& v : x) v = normal(rng);
      std::vector<float> want(n_tok * rows), got(n_tok * rows);
      be->matmul(wp, x.data(), want.data(), n_tok, &b);
      be->matmul(wr, x.data(), got.data(), n_tok, &b);
      for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(bits(got[i]), bits(want[i])) << i;
    }
    const int32_t ids[] = {0, 7, 8, 13, 71, 40};
    std::vector<float> want(6 * n), got(6 * n);
    be->get_rows(wp, ids, 6, want.data());
    be->get_rows(wr, ids, 6, got.data());
    for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(bits(got[i]), bits(want[i])) << i;
  }
}

TEST(RepackR8, PlainRowKernelsAndWriterRefuseRepackedTypes) {
  std::vector<uint8_t> row(row_size(DType::Q4_0, 32));
  float out[32];
  for (DType rt : {DType::Q4_0_R8, DType::Q8_0_R8}) {
    EXPECT_THROW(dequantize_row(rt, row.data(), out, 32), Error);
    EXPECT_THROW(vec_dot_fn(rt), Error);
    EXPECT_EQ(gemm_tile_fn(rt), nullptr);
    EXPECT_EQ(vec_dot_type(rt), DType::Q8_0);
    gguf::Writer w;
    const int64_t ne[4] = {32, 8, 1, 1};
    EXPECT_THROW(w.add_tensor("w", rt, 2, ne, [](uint8_t*) {}), Error);
  }
  EXPECT_THROW(repacked_type(DType::Q4_1), Error);
  EXPECT_FALSE(can_repack(DType::Q4_1));
  EXPECT_FALSE(is_repacked(DType::Q8_0));
  EXPECT_EQ(dtype_info(static_cast<uint32_t>(DType::Q4_0_R8))->block_size, 32);
}

}  // namespace
}  // namespace tessera::cpu
