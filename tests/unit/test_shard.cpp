// Tensor-parallel sharding math (models/shard.h): which heads and rows a rank keeps, and the
// bytes of its shard of plain and quantized matrices.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "error_testing.h"
#include "models/shard.h"
#include "quant/quant.h"
#include "random_data.h"

namespace tessera {
namespace {

void expect_span(Span s, int64_t begin, int64_t count) {
  EXPECT_EQ(s.begin, begin);
  EXPECT_EQ(s.count, count);
}

using testing_util::error_of;

TEST(ShardSpan, EqualPartsOrAClearError) {
  expect_span(shard_span(12, 0, 3, "n"), 0, 4);
  expect_span(shard_span(12, 2, 3, "n"), 8, 4);
  expect_span(shard_span(7, 0, 1, "n"), 0, 7);
  const std::string e = error_of([] { shard_span(9, 1, 2, "the number of attention heads"); });
  EXPECT_EQ(e, "the number of attention heads (9) does not divide by the tensor-parallel size 2");
}

TEST(HeadSpan, SplitsOrSharesKvHeads) {
  expect_span(head_span(8, 3, 4, "KV heads"), 6, 2);
  // One KV head (MQA) on two ranks: both hold it.
  expect_span(head_span(1, 0, 2, "KV heads"), 0, 1);
  expect_span(head_span(1, 1, 2, "KV heads"), 0, 1);
  // Two KV heads on four ranks: ranks 0, 1 hold head 0; ranks 2, 3 head 1.
  for (int r = 0; r < 4; ++r) expect_span(head_span(2, r, 4, "KV heads"), r / 2, 1);
  EXPECT_NE(error_of([] { head_span(3, 0, 2, "the number of KV heads"); }), "");
}

// A [rows, cols] F32 matrix with w[r][c] = 100 r + c.
std::vector<float> ramp(int rows, int cols) {
  std::vector<float> w(static_cast<size_t>(rows) * cols);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) w[static_cast<size_t>(r) * cols + c] = 100.0f * r + c;
  return w;
}

Tensor matrix(DType t, int64_t rows, int64_t cols, const void* data) {
  return {t, {cols, rows, 1, 1}, data};
}

TEST(ShardWeight, RowRangesInOrder) {
  const std::vector<float> w = ramp(6, 4);
  std::vector<std::unique_ptr<uint8_t[]>> storage;
  // A fused matrix keeps one range of each part: rows 1-2 and row 4.
  const Tensor s = shard_weight(matrix(DType::F32, 6, 4, w.data()), "w", {.rows = {{1, 2}, {4, 1}}},
                                1, 2, storage);
  ASSERT_EQ(s.rows(), 3);
  ASSERT_EQ(s.cols(), 4);
  const float* d = static_cast<const float*>(s.data);
  EXPECT_EQ(d[0], 100.0f);
  EXPECT_EQ(d[4 + 3], 203.0f);
  EXPECT_EQ(d[8 + 2], 402.0f);
  EXPECT_EQ(storage.size(), 1u);
}

TEST(ShardWeight, ColumnSlicesOfEveryRow) {
  const std::vector<float> w = ramp(3, 6);
  std::vector<std::unique_ptr<uint8_t[]>> storage;
  for (int rank = 0; rank < 3; ++rank) {
    const Tensor s = shard_weight(matrix(DType::F32, 3, 6, w.data()), "w", {.split_cols = true},
                                  rank, 3, storage);
    ASSERT_EQ(s.rows(), 3);
    ASSERT_EQ(s.cols(), 2);
    const float* d = static_cast<const float*>(s.data);
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 2; ++c) EXPECT_EQ(d[r * 2 + c], 100.0f * r + 2 * rank + c);
  }
  EXPECT_NE(error_of([&] {
              shard_weight(matrix(DType::F32, 3, 6, w.data()), "w", {.split_cols = true}, 0, 4,
                           storage);
            }).find("columns of tensor 'w' (6) does not divide"),
            std::string::npos);
}

// Quantized rows split at block boundaries: each rank's slices, dequantized, are the
// full rows' values, and the slices of all ranks put together are the stored bytes.
TEST(ShardWeight, QuantizedColumnsSplitOnBlocks) {
  for (DType t : {DType::Q4_0, DType::Q4_1, DType::Q8_0, DType::Q4_K, DType::Q6_K}) {
    const int64_t rows = 3, cols = 1024, size = dtype_info(t).block_size == 256 ? 4 : 8;
    const size_t row_bytes = row_size(t, cols);
    // Random blocks, their fp16 scales set to 1 so that every value is finite.
    std::vector<uint8_t> q(row_bytes * rows);
    const std::vector<float> bytes = random_vec(q.size(), 7, 0.0f, 256.0f);
    for (size_t i = 0; i < q.size(); ++i) q[i] = static_cast<uint8_t>(bytes[i]);
    const uint16_t one = quant::fp32_to_fp16(1.0f);
    for (size_t off = 0; off < q.size(); off += dtype_info(t).type_size)
      for (int f : fp16_scale_offsets(t)) std::memcpy(q.data() + off + f, &one, 2);
    std::vector<float> full(static_cast<size_t>(cols)), part(static_cast<size_t>(cols / size));
    std::vector<uint8_t> joined(q.size());
    std::vector<std::unique_ptr<uint8_t[]>> storage;
    for (int rank = 0; rank < size; ++rank) {
      const Tensor s = shard_weight(matrix(t, rows, cols, q.data()), "w", {.split_cols = true},
                                    rank, static_cast<int>(size), storage);
      ASSERT_EQ(s.cols(), cols / size) << dtype_name(t);
      for (int64_t r = 0; r < rows; ++r) {
        quant::dequantize_row(t, q.data() + r * row_bytes, full.data(), cols);
        quant::dequantize_row(t, s.row(r), part.data(), s.cols());
        EXPECT_EQ(
            0, std::memcmp(part.data(), full.data() + rank * s.cols(), sizeof(float) * part.size()))
            << dtype_name(t) << " rank " << rank << " row " << r;
        std::memcpy(joined.data() + r * row_bytes + rank * s.row_bytes(), s.row(r), s.row_bytes());
      }
    }
    EXPECT_EQ(joined, q) << dtype_name(t);
  }
}

TEST(ShardWeight, ASplitInsideABlockIsRefused) {
  std::vector<uint8_t> q(row_size(DType::Q4_0, 64) * 2);
  std::vector<std::unique_ptr<uint8_t[]>> storage;
  const std::string e = error_of([&] {
    shard_weight(matrix(DType::Q4_0, 2, 64, q.data()), "blk.0.attn_output.weight",
                 {.split_cols = true}, 1, 4, storage);
  });
  EXPECT_EQ(e,
            "tensor 'blk.0.attn_output.weight' (Q4_0, blocks of 32 values) cannot be split into 4 "
            "column slices of 16: the split would cut a quantization block");
  std::vector<uint8_t> k(row_size(DType::Q4_K, 512) * 2);
  EXPECT_NE(error_of([&] {
              shard_weight(matrix(DType::Q4_K, 2, 512, k.data()), "w", {.split_cols = true}, 0, 4,
                           storage);
            }),
            "");
  EXPECT_EQ(error_of([&] {
              shard_weight(matrix(DType::Q4_K, 2, 512, k.data()), "w", {.split_cols = true}, 0, 2,
                           storage);
            }),
            "");
}

}  // namespace
}  // namespace tessera
