// Tests of the CPU quantization kernels (src/backend/cpu/quants.h):
//  - scalar references against vectors written by gguf-py's gguf.quants
//    (scripts/gen_quant_vectors.py -> tests/data/quants/), bit for bit;
//  - every SIMD level this CPU has against the scalar references;
//  - the reference dot products against a double-precision dot of the dequantized rows.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/quants.h"
#include "core/error.h"
#include "random_data.h"

namespace tessera::cpu {
namespace {

const DType kWeightTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q4_0, DType::Q4_1,
                              DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q2_K, DType::Q3_K,
                              DType::Q4_K, DType::Q5_K, DType::Q6_K};
const DType kAllTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q4_0, DType::Q4_1,
                           DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q8_1, DType::Q2_K,
                           DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q8_K};
const DType kActivationTypes[] = {DType::F32,  DType::F16,  DType::BF16,
                                  DType::Q8_0, DType::Q8_1, DType::Q8_K};

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// SIMD levels present on this CPU (besides "scalar").
std::vector<const char*> simd_levels() {
  std::vector<const char*> levels;
  for (const char* l : {"avx2", "avx512"}) {
    if (vec_dot_fn_for(DType::F32, l) != nullptr) levels.push_back(l);
  }
  return levels;
}

// ------------------------------------------------------------------ gguf-py vectors

struct Vector {
  uint32_t kind = 0, type = 0, n = 0, n_bytes = 0;
  std::vector<uint8_t> bytes;
  std::vector<float> floats;
};

// Reads tests/data/quants/<name> (layout documented in scripts/gen_quant_vectors.py).
Vector read_vector(const std::string& name) {
  const std::string path = std::string(TESSERA_TEST_DATA) + "/quants/" + name;
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("missing test vector " + path);
  char magic[4];
  uint32_t hdr[4];
  f.read(magic, 4);
  f.read(reinterpret_cast<char*>(hdr), sizeof(hdr));
  if (std::memcmp(magic, "TQV1", 4) != 0) throw std::runtime_error("bad magic in " + path);
  Vector v{hdr[0], hdr[1], hdr[2], hdr[3], {}, {}};
  v.bytes.resize(v.n_bytes);
  v.floats.resize(v.n);
  if (v.kind == 0) {
    f.read(reinterpret_cast<char*>(v.bytes.data()), v.n_bytes);
    f.read(reinterpret_cast<char*>(v.floats.data()), v.n * sizeof(float));
  } else {
    f.read(reinterpret_cast<char*>(v.floats.data()), v.n * sizeof(float));
    f.read(reinterpret_cast<char*>(v.bytes.data()), v.n_bytes);
  }
  if (!f) throw std::runtime_error("truncated test vector " + path);
  return v;
}

TEST(QuantsGguf, DequantizeRefMatchesGgufBitExact) {
  const DType types[] = {DType::F16,  DType::BF16, DType::Q4_0, DType::Q4_1,
                         DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q2_K,
                         DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K};
  for (DType t : types) {
    SCOPED_TRACE(dtype_name(t));
    const Vector v = read_vector(std::string("deq_") + dtype_name(t) + ".bin");
    ASSERT_EQ(v.kind, 0u);
    ASSERT_EQ(v.type, static_cast<uint32_t>(t));
    ASSERT_EQ(v.n_bytes, row_size(t, v.n));
    std::vector<float> y(v.n, -12345.f);
    quant::dequantize_row(t, v.bytes.data(), y.data(), v.n);
    int mismatches = 0;
    for (uint32_t i = 0; i < v.n; ++i) {
      if (bits(y[i]) != bits(v.floats[i]) && ++mismatches <= 5) {
        ADD_FAILURE() << "element " << i << ": got " << y[i] << " want " << v.floats[i];
      }
    }
    EXPECT_EQ(mismatches, 0);
  }
}

TEST(QuantsGguf, QuantizeRefMatchesGgufBytes) {
  const DType types[] = {DType::F16,  DType::BF16, DType::Q4_0, DType::Q4_1,
                         DType::Q5_0, DType::Q5_1, DType::Q8_0};
  for (DType t : types) {
    SCOPED_TRACE(dtype_name(t));
    const Vector v = read_vector(std::string("q_") + dtype_name(t) + ".bin");
    ASSERT_EQ(v.kind, 1u);
    ASSERT_EQ(v.type, static_cast<uint32_t>(t));
    ASSERT_EQ(v.n_bytes, row_size(t, v.n));
    std::vector<uint8_t> q(v.n_bytes, 0xAA);
    quant::quantize_row(t, v.floats.data(), q.data(), v.n);
    int diff = 0;
    for (uint32_t i = 0; i < v.n_bytes; ++i) diff += q[i] != v.bytes[i];
    EXPECT_EQ(diff, 0) << "bytes differing from gguf.quants";
  }
}

// ------------------------------------------------------------------ fp16 / bf16

TEST(QuantsFp16, RoundTripsEveryNonNanHalf) {
  for (uint32_t h = 0; h < 65536; ++h) {
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0) continue;  // NaN
    const float f = fp16_to_fp32(static_cast<uint16_t>(h));
    ASSERT_EQ(fp32_to_fp16(f), h) << "h=" << h;
  }
}

TEST(QuantsFp16, RoundsHalfwayToEven) {
  // 1 + 2^-11 lies halfway between 1 and 1 + 2^-10: even mantissa (1.0) wins.
  EXPECT_EQ(fp32_to_fp16(1.0f + 0x1p-11f), 0x3c00);
  EXPECT_EQ(fp32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3c02);
  EXPECT_EQ(fp32_to_fp16(0x1p-25f), 0x0000);      // halfway to the smallest subnormal
  EXPECT_EQ(fp32_to_fp16(3 * 0x1p-25f), 0x0002);  // halfway between 1 and 2 subnormal steps
  EXPECT_EQ(fp32_to_fp16(65520.f), 0x7c00);       // halfway to 65536 -> inf
  EXPECT_EQ(fp32_to_fp16(65519.f), 0x7bff);
  EXPECT_EQ(fp32_to_fp16(-INFINITY), 0xfc00);
  EXPECT_TRUE(std::isnan(fp16_to_fp32(fp32_to_fp16(NAN))));
  EXPECT_EQ(fp32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
  EXPECT_EQ(fp32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
  EXPECT_EQ(bf16_to_fp32(0xc040), -3.0f);
}

// ------------------------------------------------------------------ random rows

// Random weight/raw row of type t: random bytes with every fp16 scale field replaced by a
// finite value of magnitude 1e-4..4 (random bytes there could be NaN/Inf).
std::vector<uint8_t> random_row(DType t, int64_t n, std::mt19937& rng) {
  std::vector<uint8_t> row(row_size(t, n));
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& b : row) b = static_cast<uint8_t>(byte(rng));
  std::uniform_real_distribution<float> lg(std::log(1e-4f), std::log(4.f));
  std::normal_distribution<float> normal(0.f, 1.f);
  auto scale = [&] { return (byte(rng) & 1 ? -1.f : 1.f) * std::exp(lg(rng)); };
  auto put16 = [&](uint8_t* p, uint16_t h) { std::memcpy(p, &h, 2); };
  if (t == DType::F32 || t == DType::F16 || t == DType::BF16) {
    for (int64_t i = 0; i < n; ++i) {
      const float v = normal(rng);
      if (t == DType::F32) std::memcpy(row.data() + 4 * i, &v, 4);
      if (t == DType::F16) put16(row.data() + 2 * i, fp32_to_fp16(v));
      if (t == DType::BF16) put16(row.data() + 2 * i, fp32_to_bf16(v));
    }
    return row;
  }
  const std::vector<int> fields = fp16_scale_offsets(t);
  if (fields.empty()) ADD_FAILURE() << "no random rows for " << dtype_name(t);
  const size_t bs = dtype_info(t).type_size;
  for (size_t off = 0; off < row.size(); off += bs) {
    for (int f : fields) put16(row.data() + off + f, fp32_to_fp16(scale()));
  }
  return row;
}

std::vector<float> random_floats(int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<float> lg(std::log(1e-3f), std::log(10.f));
  std::vector<float> x(n);
  // Vary the magnitude every 32 elements, as real activations do across channels.
  float s = 1.f;
  for (int64_t i = 0; i < n; ++i) {
    if (i % 32 == 0) s = std::exp(lg(rng));
    x[i] = s * normal(rng);
  }
  return x;
}

std::vector<int64_t> test_sizes(DType t) {
  const int64_t bs = dtype_info(t).block_size;
  if (bs == 1) return {1, 7, 15, 16, 17, 31, 33, 64, 100, 255, 4096, 4103};
  if (bs == 32) return {32, 64, 96, 128, 160, 256, 288, 1024, 32 * 37, 4096};
  return {256, 512, 768, 1024, 256 * 7, 4096};
}

std::vector<double> dequantized(DType t, const void* row, int64_t n) {
  std::vector<float> f(n);
  quant::dequantize_row(t, row, f.data(), n);
  return {f.begin(), f.end()};
}

// ------------------------------------------------------------------ reference dot

// Q8_1 stores s = fp16(d * sum(q)) and the Q4_1/Q5_1 dots use it for the min term, so their
// exact value differs from the dot of the dequantized rows by sum_b m_b * (s_b - d_b*sum q_b).
double q8_1_min_correction(DType t, const uint8_t* w, const uint8_t* x, int64_t n) {
  if (t != DType::Q4_1 && t != DType::Q5_1) return 0.0;
  const size_t wbs = dtype_info(t).type_size, xbs = dtype_info(DType::Q8_1).type_size;
  double c = 0.0;
  for (int64_t b = 0; b < n / 32; ++b) {
    uint16_t m, d, s;
    std::memcpy(&m, w + b * wbs + 2, 2);  // Q4_1/Q5_1: d at 0, m at 2
    std::memcpy(&d, x + b * xbs, 2);      // Q8_1: d at 0, s at 2, qs at 4
    std::memcpy(&s, x + b * xbs + 2, 2);
    int sum = 0;
    for (int j = 0; j < 32; ++j) sum += static_cast<int8_t>(x[b * xbs + 4 + j]);
    c += double(fp16_to_fp32(m)) * (double(fp16_to_fp32(s)) - double(fp16_to_fp32(d)) * sum);
  }
  return c;
}

TEST(QuantsRef, VecDotMatchesDoubleDotOfDequantizedRows) {
  std::mt19937 rng(1234);
  for (DType t : kWeightTypes) {
    const DType xt = vec_dot_type(t);
    for (int64_t n : test_sizes(t)) {
      SCOPED_TRACE(std::string(dtype_name(t)) + " n=" + std::to_string(n));
      for (int rep = 0; rep < 4; ++rep) {
        const std::vector<uint8_t> w = random_row(t, n, rng);
        const std::vector<float> xf = random_floats(n, rng);
        std::vector<uint8_t> x(row_size(xt, n));
        quant::quantize_row(xt, xf.data(), x.data(), n);
        const std::vector<double> wd = dequantized(t, w.data(), n),
                                  xd = dequantized(xt, x.data(), n);
        double exact = 0.0, mag = 0.0;
        for (int64_t i = 0; i < n; ++i) {
          exact += wd[i] * xd[i];
          mag += std::fabs(wd[i] * xd[i]);
        }
        exact += q8_1_min_correction(t, w.data(), x.data(), n);
        const double got = quant::vec_dot(t, n, w.data(), x.data());
        EXPECT_NEAR(got, exact, 1e-4 * mag + 1e-30);
      }
    }
  }
}

// ------------------------------------------------------------------ activation quantizers

TEST(QuantsRef, Q8_1BlocksAreRoundedAndCarryTheirSum) {
  std::mt19937 rng(7);
  const int64_t n = 1024;
  const std::vector<float> x = random_floats(n, rng);
  std::vector<uint8_t> q(row_size(DType::Q8_1, n));
  quant::quantize_row(DType::Q8_1, x.data(), q.data(), n);
  for (int64_t b = 0; b < n / 32; ++b) {
    const uint8_t* blk = q.data() + b * 36;
    float amax = 0.f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    int sum = 0, qmax = 0;
    for (int j = 0; j < 32; ++j) {
      const int v = static_cast<int8_t>(blk[4 + j]);
      sum += v;
      qmax = std::max(qmax, std::abs(v));
      EXPECT_LE(std::fabs(v - double(x[b * 32 + j]) * 127.0 / amax), 0.5 + 1e-4);
    }
    EXPECT_EQ(qmax, 127);
    uint16_t d, s;
    std::memcpy(&d, blk, 2);
    std::memcpy(&s, blk + 2, 2);
    // fp16 rounding: half an ulp relative, or half the subnormal step 2^-24 absolute.
    EXPECT_NEAR(fp16_to_fp32(d), amax / 127.0, amax / 127.0 * 0x1p-11 + 0x1p-25);
    EXPECT_NEAR(fp16_to_fp32(s), sum * (amax / 127.0),
                std::fabs(sum * amax / 127.0) * 0x1p-11 + 0x1p-25);
  }
}

TEST(QuantsRef, Q8_KBlocksAreRoundedAndCarryBlockSums) {
  std::mt19937 rng(8);
  const int64_t n = 2048;
  std::vector<float> x = random_floats(n, rng);
  std::fill(x.begin() + 256, x.begin() + 512, 0.f);  // an all-zero super-block
  std::vector<uint8_t> q(row_size(DType::Q8_K, n));
  quant::quantize_row(DType::Q8_K, x.data(), q.data(), n);
  for (int64_t b = 0; b < n / 256; ++b) {
    const uint8_t* blk = q.data() + b * 292;
    float d;
    std::memcpy(&d, blk, 4);
    const auto* qs = reinterpret_cast<const int8_t*>(blk + 4);
    float max = 0.f;
    for (int j = 0; j < 256; ++j) {
      if (std::fabs(x[b * 256 + j]) > std::fabs(max)) max = x[b * 256 + j];
    }
    if (max == 0.f) {
      EXPECT_EQ(d, 0.f);
      for (int j = 0; j < 256; ++j) EXPECT_EQ(qs[j], 0);
      continue;
    }
    EXPECT_NEAR(d, max / -127.0, std::fabs(max / 127.0) * 1e-6);
    for (int j = 0; j < 256; ++j) {
      EXPECT_LE(std::fabs(qs[j] - double(x[b * 256 + j]) * -127.0 / max), 0.5 + 1e-4);
      EXPECT_GE(qs[j], -127);
    }
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += qs[16 * g + j];
      int16_t bsum;
      std::memcpy(&bsum, blk + 4 + 256 + 2 * g, 2);
      EXPECT_EQ(bsum, sum);
    }
  }
}

TEST(QuantsDispatch, TypesAndErrors) {
  EXPECT_EQ(vec_dot_type(DType::Q4_0), DType::Q8_0);
  EXPECT_EQ(vec_dot_type(DType::Q4_1), DType::Q8_1);
  EXPECT_EQ(vec_dot_type(DType::Q5_1), DType::Q8_1);
  EXPECT_EQ(vec_dot_type(DType::Q6_K), DType::Q8_K);
  EXPECT_EQ(vec_dot_type(DType::BF16), DType::F32);
  EXPECT_EQ(vec_dot_type(DType::F16), DType::F32);
  EXPECT_THROW(vec_dot_type(DType::Q8_K), Error);
  EXPECT_THROW(vec_dot_fn(DType::Q8_1), Error);
  std::vector<float> x(256, 1.f);
  std::vector<uint8_t> q(256);
  EXPECT_THROW(quantize_row(DType::Q4_K, x.data(), q.data(), 256), Error);
  EXPECT_THROW(quant::quantize_row(DType::Q6_K, x.data(), q.data(), 256), Error);
  const std::string level = simd_level();
  EXPECT_TRUE(level == "scalar" || level == "avx2" || level == "avx512") << level;
  for (DType t : kWeightTypes) EXPECT_NE(vec_dot_fn(t), nullptr) << dtype_name(t);
  EXPECT_EQ(vec_dot_fn_for(DType::Q4_0, "sse9"), nullptr);
  EXPECT_NE(vec_dot_fn_for(DType::Q4_0, "scalar"), nullptr);
}

// ------------------------------------------------------------------ SIMD vs reference

TEST(QuantsSimd, DequantizeMatchesRefExactly) {
  std::mt19937 rng(99);
  for (const char* level : simd_levels()) {
    for (DType t : kAllTypes) {
      const DequantizeRowFn f = dequantize_row_fn_for(t, level);
      ASSERT_NE(f, nullptr);
      for (int64_t n : test_sizes(t)) {
        SCOPED_TRACE(std::string(level) + " " + dtype_name(t) + " n=" + std::to_string(n));
        std::vector<uint8_t> row;
        if (t == DType::Q8_1 || t == DType::Q8_K) {
          const std::vector<float> xf = random_floats(n, rng);
          row.resize(row_size(t, n));
          quant::quantize_row(t, xf.data(), row.data(), n);
        } else {
          row = random_row(t, n, rng);
        }
        std::vector<float> want(n), got(n, -1.f);
        quant::dequantize_row(t, row.data(), want.data(), n);
        f(row.data(), got.data(), n);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(bits(got[i]), bits(want[i])) << "i=" << i;
      }
    }
  }
}

// The SIMD quantizers compute the same scale and the same products x * multiplier in fp32 and
// round with the same rule, so their bytes equal the reference's exactly.
TEST(QuantsSimd, QuantizeMatchesRefExactly) {
  std::mt19937 rng(5);
  for (const char* level : simd_levels()) {
    for (DType t : kActivationTypes) {
      const QuantizeRowFn f = quantize_row_fn_for(t, level);
      ASSERT_NE(f, nullptr);
      for (int64_t n : test_sizes(t)) {
        SCOPED_TRACE(std::string(level) + " " + dtype_name(t) + " n=" + std::to_string(n));
        std::vector<float> x = random_floats(n, rng);
        if (n >= 64) std::fill(x.begin(), x.begin() + 32, 0.f);  // zero block
        if (n >= 96) {
          // With -127 the largest magnitude the scale is exactly 1, so these are exact
          // rounding ties for Q8_0 (away from zero) and Q8_1/Q8_K (to even); 1 + 2^-11 and
          // 1 + 3 * 2^-11 are fp16 ties.
          const float ties[] = {-127.f,
                                0.5f,
                                1.5f,
                                2.5f,
                                -0.5f,
                                -1.5f,
                                -2.5f,
                                126.5f,
                                -126.5f,
                                1.f + 0x1p-11f,
                                1.f + 3 * 0x1p-11f,
                                3.5f};
          std::copy(std::begin(ties), std::end(ties), x.begin() + 64);
        }
        std::vector<uint8_t> want(row_size(t, n)), got(row_size(t, n), 0xAA);
        quant::quantize_row(t, x.data(), want.data(), n);
        f(x.data(), got.data(), n);
        int diff = 0;
        for (size_t i = 0; i < want.size(); ++i) diff += got[i] != want[i];
        EXPECT_EQ(diff, 0);
      }
    }
  }
}

TEST(QuantsSimd, VecDotMatchesRef) {
  std::mt19937 rng(4321);
  for (const char* level : simd_levels()) {
    for (DType t : kWeightTypes) {
      const DType xt = vec_dot_type(t);
      const VecDotFn f = vec_dot_fn_for(t, level);
      ASSERT_NE(f, nullptr);
      for (int64_t n : test_sizes(t)) {
        SCOPED_TRACE(std::string(level) + " " + dtype_name(t) + " n=" + std::to_string(n));
        for (int rep = 0; rep < 8; ++rep) {
          const std::vector<uint8_t> w = random_row(t, n, rng);
          const std::vector<float> xf = random_floats(n, rng);
          std::vector<uint8_t> x(row_size(xt, n));
          quant::quantize_row(xt, xf.data(), x.data(), n);
          const std::vector<double> wd = dequantized(t, w.data(), n),
                                    xd = dequantized(xt, x.data(), n);
          double mag = 0.0;
          for (int64_t i = 0; i < n; ++i) mag += std::fabs(wd[i] * xd[i]);
          const float want = quant::vec_dot(t, n, w.data(), x.data());
          const float got = f(n, w.data(), x.data());
          ASSERT_NEAR(got, want, 1e-5 * mag + 1e-30);
        }
      }
    }
  }
}

// The public entry points use the active level's kernels.
TEST(QuantsSimd, PublicEntryPointsAgreeWithRef) {
  std::mt19937 rng(77);
  for (DType t : kWeightTypes) {
    SCOPED_TRACE(dtype_name(t));
    const int64_t n = 1024;
    const DType xt = vec_dot_type(t);
    const std::vector<uint8_t> w = random_row(t, n, rng);
    const std::vector<float> xf = random_floats(n, rng);
    std::vector<uint8_t> x(row_size(xt, n)), x_ref(row_size(xt, n));
    quantize_row(xt, xf.data(), x.data(), n);
    quant::quantize_row(xt, xf.data(), x_ref.data(), n);
    EXPECT_EQ(x, x_ref);
    std::vector<float> a(n), b(n);
    dequantize_row(t, w.data(), a.data(), n);
    quant::dequantize_row(t, w.data(), b.data(), n);
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), n * sizeof(float)));
    const std::vector<double> wd = dequantized(t, w.data(), n), xd = dequantized(xt, x.data(), n);
    double mag = 0.0;
    for (int64_t i = 0; i < n; ++i) mag += std::fabs(wd[i] * xd[i]);
    EXPECT_NEAR(vec_dot(t, n, w.data(), x.data()), quant::vec_dot(t, n, w.data(), x.data()),
                1e-5 * mag + 1e-30);
  }
}

// ------------------------------------------------------------------ tiled dots

// A gemm tile's result for a (row, activation) pair is vec_dot's, bit for bit, whatever the
// tile shape and position: batched prompts give the same numbers as one token at a time.
TEST(QuantsSimd, GemmTileEqualsVecDotBitExactForEveryShape) {
  std::mt19937 rng(99);
  int n_tested = 0;
  for (const char* level : simd_levels()) {
    for (DType t : kWeightTypes) {
      const GemmTileFn tile = gemm_tile_fn_for(t, level);
      if (tile == nullptr) continue;
      const VecDotFn dot = vec_dot_fn_for(t, level);
      const DType xt = vec_dot_type(t);
      // Float rows of other lengths than multiples of 32 too (their tiles fall back).
      const int64_t bs = dtype_info(t).block_size;
      const std::vector<int64_t> sizes = bs == 32  ? std::vector<int64_t>{32, 96, 576, 1536}
                                         : bs == 1 ? std::vector<int64_t>{40, 100, 384, 1536}
                                                   : std::vector<int64_t>{256, 768, 1536};
      for (int64_t n : sizes) {
        SCOPED_TRACE(std::string(level) + " " + dtype_name(t) + " n=" + std::to_string(n));
        const size_t wb = row_size(t, n), xb = row_size(xt, n);
        std::vector<uint8_t> w(kGemmTile * wb), x(kGemmTile * xb);
        for (int r = 0; r < kGemmTile; ++r) {
          const std::vector<uint8_t> row = random_row(t, n, rng);
          std::memcpy(w.data() + r * wb, row.data(), wb);
          const std::vector<float> xf = random_floats(n, rng);
          quantize_row(xt, xf.data(), x.data() + r * xb, n);
        }
        float want[kGemmTile][kGemmTile];  // [activation][row]
        for (int c = 0; c < kGemmTile; ++c)
          for (int r = 0; r < kGemmTile; ++r)
            want[c][r] = dot(n, w.data() + r * wb, x.data() + c * xb);
        for (int nr = 1; nr <= kGemmTile; ++nr) {
          for (int nc = 1; nc <= kGemmTile; ++nc) {
            for (int r0 = 0; r0 + nr <= kGemmTile; ++r0) {
              for (int c0 = 0; c0 + nc <= kGemmTile; ++c0) {
                float got[kGemmTile][kGemmTile + 1];
                tile(n, w.data() + r0 * wb, wb, nr, x.data() + c0 * xb, xb, nc, &got[0][0],
                     kGemmTile + 1);
                for (int c = 0; c < nc; ++c)
                  for (int r = 0; r < nr; ++r)
                    ASSERT_EQ(bits(got[c][r]), bits(want[c0 + c][r0 + r]))
                        << "tile " << nr << "x" << nc << " at (" << r0 << "," << c0 << ")";
              }
            }
          }
        }
        ++n_tested;
      }
    }
  }
  if (vec_dot_fn_for(DType::F32, "avx512") != nullptr) {
    EXPECT_GE(n_tested, 3 * 4 + 3);
  }
}

// A panel GEMM's result for a (row, token) pair is vec_dot's, bit for bit, for every tile
// height, number of tokens and position of the pair in its panel.
TEST(QuantsSimd, PanelGemmEqualsVecDotBitExactForEveryShape) {
  std::mt19937 rng(1234);
  int n_tested = 0;
  constexpr int kTokens = 2 * kPanel;
  for (const char* level : simd_levels()) {
    for (DType t : kWeightTypes) {
      const PanelGemmFn gemm = panel_gemm_fn_for(t, level);
      if (gemm == nullptr) continue;
      const VecDotFn dot = vec_dot_fn_for(t, level);
      const DType xt = vec_dot_type(t);
      for (int64_t n : {32, 96, 576, 1536}) {
        SCOPED_TRACE(std::string(level) + " " + dtype_name(t) + " n=" + std::to_string(n));
        const size_t wb = row_size(t, n), xb = row_size(xt, n);
        std::vector<uint8_t> w(kPanelRows * wb), x(kTokens * xb);
        for (int r = 0; r < kPanelRows; ++r) {
          const std::vector<uint8_t> row = random_row(t, n, rng);
          std::memcpy(w.data() + r * wb, row.data(), wb);
        }
        for (int c = 0; c < kTokens; ++c) {
          const std::vector<float> xf = random_floats(n, rng);
          quantize_row(xt, xf.data(), x.data() + c * xb, n);
        }
        const size_t pb = panel_bytes(xt, n);
        std::vector<uint8_t> panel_buf(2 * pb + 64);
        uint8_t* panels = panel_buf.data() + (-reinterpret_cast<uintptr_t>(panel_buf.data()) & 63);
        for (int n_tok : {1, 5, kPanel, kPanel + 5, kTokens}) {
          for (int p = 0; p * kPanel < n_tok; ++p) {
            pack_panel(xt, n, x.data() + p * kPanel * xb, xb, std::min(kPanel, n_tok - p * kPanel),
                       panels + p * pb);
          }
          for (int nr = 1; nr <= kPanelRows; ++nr) {
            std::vector<float> got(kTokens * (kPanelRows + 1), -1.0f);
            gemm(n, w.data(), wb, nr, panels, pb, n_tok, got.data(), kPanelRows + 1);
            for (int c = 0; c < kTokens; ++c) {
              for (int r = 0; r <= kPanelRows; ++r) {
                const float g = got[c * (kPanelRows + 1) + r];
                if (c >= n_tok || r >= nr) {
                  ASSERT_EQ(g, -1.0f) << "wrote outside the tile";
                  continue;
                }
                const float want = dot(n, w.data() + r * wb, x.data() + c * xb);
                ASSERT_EQ(bits(g), bits(want))
                    << nr << " rows, " << n_tok << " tokens: (" << r << "," << c << ")";
              }
            }
          }
        }
        ++n_tested;
      }
    }
  }
  if (vec_dot_fn_for(DType::F32, "avx512") != nullptr) {
    EXPECT_GE(n_tested, 2 * 4);
  }
}

// Q4_0's SIMD dots take the reference's order (one fma per block on the exact block sum), so
// the scalar reference is an exact oracle for them.
TEST(QuantsSimd, Q4_0DotsEqualRefBitExact) {
  std::mt19937 rng(31);
  for (const char* level : simd_levels()) {
    const VecDotFn f = vec_dot_fn_for(DType::Q4_0, level);
    for (int64_t n : test_sizes(DType::Q4_0)) {
      SCOPED_TRACE(std::string(level) + " n=" + std::to_string(n));
      for (int rep = 0; rep < 8; ++rep) {
        const std::vector<uint8_t> w = random_row(DType::Q4_0, n, rng);
        const std::vector<float> xf = random_floats(n, rng);
        std::vector<uint8_t> x(row_size(DType::Q8_0, n));
        quant::quantize_row(DType::Q8_0, xf.data(), x.data(), n);
        ASSERT_EQ(bits(f(n, w.data(), x.data())),
                  bits(quant::vec_dot(DType::Q4_0, n, w.data(), x.data())));
      }
    }
  }
}

// The AVX2 and AVX-512 dots of the types with tiles share one summation order, so the SIMD
// level does not change the numbers either.
TEST(QuantsSimd, BlockDotsAgreeBitExactAcrossSimdLevels) {
  if (vec_dot_fn_for(DType::F32, "avx512") == nullptr) GTEST_SKIP() << "no AVX-512";
  std::mt19937 rng(7);
  for (DType t : {DType::Q4_0, DType::Q4_1, DType::Q8_0, DType::Q4_K}) {
    const DType xt = vec_dot_type(t);
    for (int64_t n : test_sizes(t)) {
      SCOPED_TRACE(std::string(dtype_name(t)) + " n=" + std::to_string(n));
      const std::vector<uint8_t> w = random_row(t, n, rng);
      const std::vector<float> xf = random_floats(n, rng);
      std::vector<uint8_t> x(row_size(xt, n));
      quant::quantize_row(xt, xf.data(), x.data(), n);
      EXPECT_EQ(bits(vec_dot_fn_for(t, "avx2")(n, w.data(), x.data())),
                bits(vec_dot_fn_for(t, "avx512")(n, w.data(), x.data())));
    }
  }
}

// ------------------------------------------------------------------ attention kernel

// Exact softmax attention (double) of one query over n fp16 keys/values, for the sanity check.
std::vector<double> softmax_attention(const std::vector<uint16_t>& q16, const uint16_t* k,
                                      const uint16_t* v, int64_t stride, int n, int head_dim,
                                      float scale) {
  std::vector<double> w(n), out(head_dim, 0.0);
  double mx = -INFINITY, sum = 0;
  for (int j = 0; j < n; ++j) {
    double dot = 0;
    for (int d = 0; d < head_dim; ++d)
      dot += double(fp16_to_fp32(q16[d])) * fp16_to_fp32(k[j * stride + d]);
    w[j] = dot * scale;
    mx = std::max(mx, w[j]);
  }
  for (double& x : w) sum += (x = std::exp(x - mx));
  for (int j = 0; j < n; ++j)
    for (int d = 0; d < head_dim; ++d) out[d] += w[j] / sum * fp16_to_fp32(v[j * stride + d]);
  return out;
}

// The SIMD flash-attention kernels do the reference's arithmetic in the same order: equal
// bits for the running maxima, sums and fp16 accumulators, however the keys are split
// across calls; and the result is softmax attention up to fp16 accumulation error.
TEST(QuantsSimd, FlashAttentionEqualsRefBitExact) {
  std::mt19937 rng(5);
  const FlashAttnFn ref = flash_attn_fn_for("scalar");
  ASSERT_NE(ref, nullptr);
  for (const char* level : simd_levels()) {
    const FlashAttnFn fa = flash_attn_fn_for(level);
    ASSERT_NE(fa, nullptr);
    for (int head_dim : {8, 12, 40, 64, 72, 128, 256}) {
      for (int nq : {1, 3, 5, 8}) {
        for (int n : {1, 5, 16, 37}) {
          SCOPED_TRACE(std::string(level) + " head_dim=" + std::to_string(head_dim) +
                       " nq=" + std::to_string(nq) + " n=" + std::to_string(n));
          const int64_t stride = 3 * head_dim;  // rows of a 3-KV-head cache
          std::vector<uint16_t> q16(nq * head_dim), k(n * stride), v(n * stride);
          const std::vector<float> qf = random_floats(nq * head_dim, rng);
          const std::vector<float> kf = random_floats(n * stride, rng);
          const std::vector<float> vf = random_floats(n * stride, rng);
          for (size_t i = 0; i < q16.size(); ++i) q16[i] = fp32_to_fp16(4.0f * qf[i]);
          for (size_t i = 0; i < k.size(); ++i) k[i] = fp32_to_fp16(kf[i]);
          for (size_t i = 0; i < v.size(); ++i) v[i] = fp32_to_fp16(vf[i]);
          const float scale = 1.0f / std::sqrt(float(head_dim));
          std::vector<float> m_want(nq, -INFINITY), s_want(nq, 0.f), m_got = m_want, s_got = s_want;
          std::vector<uint16_t> a_want(nq * head_dim, 0), a_got = a_want;
          ref(q16.data(), nq, head_dim, k.data() + head_dim, v.data() + head_dim, stride, n, scale,
              m_want.data(), s_want.data(), a_want.data());
          const int n1 = n / 2;  // the kernel continues a state across calls
          fa(q16.data(), nq, head_dim, k.data() + head_dim, v.data() + head_dim, stride, n1, scale,
             m_got.data(), s_got.data(), a_got.data());
          fa(q16.data(), nq, head_dim, k.data() + head_dim + n1 * stride,
             v.data() + head_dim + n1 * stride, stride, n - n1, scale, m_got.data(), s_got.data(),
             a_got.data());
          for (int h = 0; h < nq; ++h) {
            ASSERT_EQ(bits(m_got[h]), bits(m_want[h])) << h;
            ASSERT_EQ(bits(s_got[h]), bits(s_want[h])) << h;
          }
          ASSERT_EQ(a_got, a_want);
          for (int h = 0; h < nq; ++h) {
            const std::vector<uint16_t> qh(q16.begin() + h * head_dim,
                                           q16.begin() + (h + 1) * head_dim);
            const std::vector<double> exact = softmax_attention(
                qh, k.data() + head_dim, v.data() + head_dim, stride, n, head_dim, scale);
            // Each of the n updates of the fp16 accumulator (a rescale and an fma) rounds by
            // at most 2^-11 relative to |acc| <= s * max|v| (the weights are <= 1).
            double vmax = 0;
            for (float x : vf) vmax = std::max(vmax, std::fabs(double(x)));
            for (int d = 0; d < head_dim; ++d) {
              EXPECT_NEAR(fp16_to_fp32(a_want[h * head_dim + d]) / s_want[h], exact[d],
                          2 * n * 0x1p-11 * vmax + 1e-6);
            }
          }
        }
      }
    }
  }
}

// The tiled kernels (llama.cpp's path for long prompts) do the reference's arithmetic: equal
// bits for rows at any positions (partial tiles, rows that skip a tile, padding lanes) over
// a paged cache whose blocks are out of order; and the reference is softmax attention.
TEST(QuantsSimd, TiledFlashAttentionEqualsRefBitExact) {
  std::mt19937 rng(11);
  const FlashAttnTiledFn ref = flash_attn_tiled_fn_for("scalar");
  ASSERT_NE(ref, nullptr);
  for (const char* level : simd_levels()) {
    const FlashAttnTiledFn fa = flash_attn_tiled_fn_for(level);
    ASSERT_NE(fa, nullptr);
    for (int head_dim : {64, 128, 40}) {
      for (int nq : {1, 3}) {
        for (int n_rows : {1, 7, 16}) {
          for (int first : {0, 60, 130}) {
            SCOPED_TRACE(std::string(level) + " head_dim=" + std::to_string(head_dim) +
                         " nq=" + std::to_string(nq) + " rows=" + std::to_string(n_rows) +
                         " first=" + std::to_string(first));
            const int n_kv = 2, block = 16, n_ctx = first + n_rows;
            const int n_blocks = (n_ctx + block - 1) / block;
            const int64_t stride = int64_t{n_kv} * head_dim;
            std::vector<int32_t> table(n_blocks);
            for (int i = 0; i < n_blocks; ++i) table[i] = n_blocks - 1 - i;  // reversed
            std::vector<uint16_t> k(n_blocks * block * stride), v(k.size());
            const std::vector<float> kf = random_floats(k.size(), rng);
            const std::vector<float> vf = random_floats(v.size(), rng);
            for (size_t i = 0; i < k.size(); ++i) k[i] = fp32_to_fp16(kf[i]);
            for (size_t i = 0; i < v.size(); ++i) v[i] = fp32_to_fp16(vf[i]);
            std::vector<float> q = random_floats(size_t(n_rows) * nq * head_dim, rng);
            // Large queries on some heads: weights down to exp(-150) and below, where ggml's
            // polynomial leaves the normal range (the kernels' lane-by-lane path).
            for (size_t i = 0; i < q.size(); ++i) q[i] *= (i / head_dim) % 2 == 1 ? 300.0f : 4.0f;
            std::vector<int32_t> pos(n_rows);
            for (int r = 0; r < n_rows; ++r) pos[r] = first + r;
            TiledAttnArgs a;
            a.q = q.data();
            a.q_stride = int64_t{nq} * head_dim;
            a.n_rows = n_rows;
            a.pos = pos.data();
            a.nq = nq;
            a.head_dim = head_dim;
            a.k = k.data() + head_dim;  // the second KV head
            a.v = v.data() + head_dim;
            a.kv_stride = stride;
            a.block_table = table.data();
            a.block_size = block;
            a.scale = 1.0f / std::sqrt(float(head_dim));
            a.out_stride = int64_t{nq} * head_dim;
            std::vector<float> want(size_t(n_rows) * nq * head_dim), got(want.size());
            a.out = want.data();
            ref(a);
            a.out = got.data();
            fa(a);
            for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(bits(got[i]), bits(want[i])) << i;
            // Sanity: the last row against exact softmax attention over its keys.
            const int r = n_rows - 1, n = pos[r] + 1;
            std::vector<uint16_t> kr(n * head_dim), vr(n * head_dim), qh(head_dim);
            for (int j = 0; j < n; ++j) {
              const int64_t slot = int64_t{table[j / block]} * block + j % block;
              for (int d = 0; d < head_dim; ++d) {
                kr[j * head_dim + d] = k[slot * stride + head_dim + d];
                vr[j * head_dim + d] = v[slot * stride + head_dim + d];
              }
            }
            for (int d = 0; d < head_dim; ++d) qh[d] = fp32_to_fp16(q[r * a.q_stride + d]);
            // q rounded to fp16 for the double reference: compare loosely.
            const std::vector<double> exact =
                softmax_attention(qh, kr.data(), vr.data(), head_dim, n, head_dim, a.scale);
            for (int d = 0; d < head_dim; ++d)
              EXPECT_NEAR(want[r * a.out_stride + d], exact[d], 0.05) << d;
          }
        }
      }
    }
  }
}

// The vector exp is libm's expf bit for bit: on a stride through every float bit pattern
// (the exhaustive sweep over all negative floats, the attention kernels' arguments, was run
// once by hand with stride 1), plus the edges of its special cases.
TEST(QuantsSimd, ExpBatchEqualsLibm) {
  std::vector<float> x;
  for (uint64_t b = 0; b <= 0xffffffffull; b += 4093) {
    const uint32_t u = static_cast<uint32_t>(b);
    float f;
    std::memcpy(&f, &u, 4);
    x.push_back(f);
  }
  for (float f : {0.0f, -0.0f, 1.0f, -1.0f, INFINITY, -INFINITY, NAN, 88.0f, -88.0f, 0x1.62e42ep6f,
                  0x1.62e430p6f, -0x1.9fe368p6f, -0x1.9fe36ap6f, -103.0f, -150.0f})
    x.push_back(f);
  std::vector<float> want(x.size()), got(x.size());
  for (size_t i = 0; i < x.size(); ++i) want[i] = std::exp(x[i]);
  for (const char* level : simd_levels()) {
    const ExpBatchFn e = exp_batch_fn_for(level);
    ASSERT_NE(e, nullptr);
    e(x.data(), got.data(), static_cast<int64_t>(x.size()));
    for (size_t i = 0; i < x.size(); ++i) {
      if (std::isnan(want[i])) {
        ASSERT_TRUE(std::isnan(got[i])) << level << " x=" << x[i];
        continue;
      }
      ASSERT_EQ(bits(got[i]), bits(want[i])) << level << " x=" << std::hexfloat << x[i];
    }
  }
}

// ------------------------------------------------------------------ activations

// The SIMD SwiGLU does the reference's arithmetic (ggml's exp polynomial, its fused
// multiply-adds, the libm tail past the last whole 16): equal bits at every level, also
// for arguments whose exponent leaves the fast path; and it is SiLU to a few ulps.
TEST(QuantsSimd, SiluMulEqualsRefBitExact) {
  std::mt19937 rng(9);
  const SiluMulFn ref = silu_mul_fn_for("scalar");
  ASSERT_NE(ref, nullptr);
  for (const char* level : simd_levels()) {
    const SiluMulFn f = silu_mul_fn_for(level);
    ASSERT_NE(f, nullptr);
    for (int64_t n : {1, 15, 16, 37, 1536}) {
      SCOPED_TRACE(std::string(level) + " n=" + std::to_string(n));
      std::vector<float> g = random_floats(n, rng), up = random_floats(n, rng);
      for (int64_t i = 0; i < n; ++i) g[i] *= 12.0f;
      const float extremes[] = {-100.f, 100.f, -87.5f, 88.f, -0.f, 1e-30f, -200.f, 150.f};
      for (int64_t i = 0; i < n && i < 8; ++i) g[(i * 5) % n] = extremes[i];
      std::vector<float> want = g, got = g;
      ref(want.data(), up.data(), n);
      f(got.data(), up.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(bits(got[i]), bits(want[i])) << i << " x=" << g[i];
        const double x = g[i], silu = x / (1.0 + std::exp(-x)) * up[i];
        EXPECT_NEAR(want[i], silu, std::fabs(silu) * 1e-6 + 1e-30) << i << " x=" << g[i];
      }
    }
  }
}

}  // namespace
}  // namespace tessera::cpu
