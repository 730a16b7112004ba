// Tensor-parallel sharding math (models/shard.h): which heads and rows a rank keeps, and the
// bytes of its shard of plain and quantized matrices.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <string>
#include <utility>
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

TEST(ShardSpan, NearlyEqualPartsOfWholeGranules) {
  expect_span(shard_span(12, 0, 3, "n"), 0, 4);
  expect_span(shard_span(12, 2, 3, "n"), 8, 4);
  expect_span(shard_span(7, 0, 1, "n"), 0, 7);
  // Uneven: the first parts take one more.
  expect_span(shard_span(9, 0, 2, "n"), 0, 5);
  expect_span(shard_span(9, 1, 2, "n"), 5, 4);
  expect_span(shard_span(30, 3, 4, "layers"), 23, 7);
  // Granules: 1536 feed-forward rows in blocks of 32 (48 blocks), and 1568 (49 blocks).
  expect_span(shard_span(1536, 1, 2, "ff", 32), 768, 768);
  expect_span(shard_span(1568, 0, 2, "ff", 32), 0, 800);
  expect_span(shard_span(1568, 1, 2, "ff", 32), 800, 768);
  // The parts of all ranks cover n exactly, in order.
  for (int size = 1; size <= 7; ++size) {
    int64_t next = 0;
    for (int r = 0; r < size; ++r) {
      const Span s = shard_span(96, r, size, "n", 8);
      EXPECT_EQ(s.begin, next);
      EXPECT_EQ(s.count % 8, 0);
      next += s.count;
    }
    EXPECT_EQ(next, 96);
  }
  EXPECT_EQ(error_of([] { shard_span(2, 1, 3, "the number of layers"); }),
            "the number of layers (2) cannot be split among 3 tensor-parallel ranks: one would "
            "get none");
  EXPECT_EQ(error_of([] { shard_span(64, 0, 4, "the feed-forward size", 32); }),
            "the feed-forward size (64, 2 blocks of 32) cannot be split among 4 tensor-parallel "
            "ranks: one would get none");
  EXPECT_NE(error_of([] { shard_span(100, 0, 2, "ff", 32); }), "");
}

// Feed-forward rows: 16-row groups (and whole blocks of Wdown), the rest on the last rank.
TEST(FfnSpan, GroupsOfTheActivationWidth) {
  const auto spans = [](int64_t n, int64_t block, int size, bool exact) {
    std::vector<std::pair<int64_t, int64_t>> r;
    for (int k = 0; k < size; ++k) {
      const Span s = ffn_span(n, block, k, size, "ff", exact);
      r.emplace_back(s.begin, s.count);
    }
    return r;
  };
  using V = std::vector<std::pair<int64_t, int64_t>>;
  EXPECT_EQ(spans(172, 1, 2, true), (V{{0, 80}, {80, 92}}));  // F32: 10 groups and 12 rows
  EXPECT_EQ(spans(1536, 32, 2, true), (V{{0, 768}, {768, 768}}));
  EXPECT_EQ(spans(40, 1, 1, true), (V{{0, 40}}));
  // One group too few: one each, the rest on the last rank (24 rows: 16 and 8).
  EXPECT_EQ(spans(24, 1, 2, true), (V{{0, 16}, {16, 8}}));
  EXPECT_EQ(spans(40, 1, 3, true), (V{{0, 16}, {16, 16}, {32, 8}}));
  // Fewer rows than one group: whole blocks, exact or not (every value takes the same path).
  EXPECT_EQ(spans(8, 1, 2, true), (V{{0, 4}, {4, 4}}));
  EXPECT_EQ(spans(12, 4, 2, true), (V{{0, 8}, {8, 4}}));
  // More: whole blocks when the sums are split anyway; refused for exact mode.
  EXPECT_EQ(spans(16, 1, 2, false), (V{{0, 8}, {8, 8}}));
  EXPECT_EQ(spans(48, 1, 4, false), (V{{0, 12}, {12, 12}, {24, 12}, {36, 12}}));
  EXPECT_EQ(error_of([] { ffn_span(16, 1, 0, 2, "the expert feed-forward size", true); }),
            "the expert feed-forward size (16) cannot be split among 2 tensor-parallel ranks in "
            "groups of 16 rows, as bit-exact tensor parallelism needs");
  EXPECT_NE(error_of([] { ffn_span(48, 1, 0, 4, "ff", true); }), "");
  EXPECT_NE(error_of([] { ffn_span(64, 32, 0, 3, "ff", false); }), "");  // 2 blocks, 3 ranks
}

void expect_heads(HeadShard h, int64_t q_begin, int64_t q_count, int64_t kv_begin,
                  int64_t kv_count) {
  expect_span(h.q_heads, q_begin, q_count);
  expect_span(h.kv_heads, kv_begin, kv_count);
}

TEST(HeadSpan, SplitsByGqaGroups) {
  // 32 heads, 8 KV heads on 4 ranks: two groups of 4 each.
  expect_heads(head_span(32, 8, 3, 4), 24, 8, 6, 2);
  // SmolLM2: 9 heads, 3 KV heads (groups of 3) on 2 ranks: KV 0-1 = q 0-5, KV 2 = q 6-8.
  expect_heads(head_span(9, 3, 0, 2), 0, 6, 0, 2);
  expect_heads(head_span(9, 3, 1, 2), 6, 3, 2, 1);
  // ... on 3 ranks: one group each.
  for (int r = 0; r < 3; ++r) expect_heads(head_span(9, 3, r, 3), 3 * r, 3, r, 1);
}

TEST(HeadSpan, SharesKvHeadsWhenFewerThanRanks) {
  // One KV head (MQA) on two ranks: both hold it, each half of the query heads.
  expect_heads(head_span(4, 1, 0, 2), 0, 2, 0, 1);
  expect_heads(head_span(4, 1, 1, 2), 2, 2, 0, 1);
  // Two KV heads on four ranks: ranks 0, 1 hold head 0; ranks 2, 3 head 1.
  for (int r = 0; r < 4; ++r) expect_heads(head_span(8, 2, r, 4), 2 * r, 2, r / 2, 1);
  // Three KV heads (groups of 3) on four ranks: KV head 0 on ranks 0, 1 (q 0-1, q 2), the
  // others on one rank each.
  expect_heads(head_span(9, 3, 0, 4), 0, 2, 0, 1);
  expect_heads(head_span(9, 3, 1, 4), 2, 1, 0, 1);
  expect_heads(head_span(9, 3, 2, 4), 3, 3, 1, 1);
  expect_heads(head_span(9, 3, 3, 4), 6, 3, 2, 1);
  // Refused: more ranks than query heads, heads not in whole groups.
  EXPECT_EQ(error_of([] { head_span(2, 1, 0, 3); }),
            "the query heads of KV head 0 (2) cannot be split among 3 tensor-parallel ranks: one "
            "would get none");
  EXPECT_NE(error_of([] { head_span(9, 2, 0, 2); }), "");
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
  const Tensor s =
      shard_weight(matrix(DType::F32, 6, 4, w.data()), "w", {.rows = {{1, 2}, {4, 1}}}, storage);
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
    const Tensor s = shard_weight(matrix(DType::F32, 3, 6, w.data()), "w",
                                  {.cols = shard_span(6, rank, 3, "cols")}, storage);
    ASSERT_EQ(s.rows(), 3);
    ASSERT_EQ(s.cols(), 2);
    const float* d = static_cast<const float*>(s.data);
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 2; ++c) EXPECT_EQ(d[r * 2 + c], 100.0f * r + 2 * rank + c);
  }
  // Uneven column slices: columns 4-5 of every row.
  const Tensor s = shard_weight(matrix(DType::F32, 3, 6, w.data()), "w", {.cols = {4, 2}}, storage);
  ASSERT_EQ(s.cols(), 2);
  EXPECT_EQ(static_cast<const float*>(s.data)[2 + 1], 105.0f);
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
      const Tensor s =
          shard_weight(matrix(t, rows, cols, q.data()), "w",
                       {.cols = shard_span(cols, rank, static_cast<int>(size), "cols")}, storage);
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
                 {.cols = {16, 16}}, storage);
  });
  EXPECT_EQ(e,
            "tensor 'blk.0.attn_output.weight' (Q4_0, blocks of 32 values) cannot be split at "
            "columns 16-32: the split would cut a quantization block");
  std::vector<uint8_t> k(row_size(DType::Q4_K, 512) * 2);
  EXPECT_NE(
      error_of([&] {
        shard_weight(matrix(DType::Q4_K, 2, 512, k.data()), "w", {.cols = {128, 128}}, storage);
      }),
      "");
  EXPECT_EQ(
      error_of([&] {
        shard_weight(matrix(DType::Q4_K, 2, 512, k.data()), "w", {.cols = {256, 256}}, storage);
      }),
      "");
}

}  // namespace
}  // namespace tessera
