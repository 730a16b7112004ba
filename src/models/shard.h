// Tensor-parallel sharding of weight matrices (Megatron-style), as each rank loads them.
//
// A matrix W is stored [rows, cols] row-major: y = W·x maps cols inputs to rows outputs.
//   column-parallel (Wq, Wk, Wv, Wgate, Wup): the output rows are split; rank r keeps one
//     contiguous range of rows (whole heads when rows = heads * head_dim) and computes its
//     slice of y;
//   row-parallel (Wo, Wdown): the input columns are split; rank r keeps one range of
//     columns of every row (a strided copy), computes a partial y over its slice of x, and
//     the ranks' partials are summed (an all-reduce).
// Parts need not be equal: heads are split by GQA groups (the KV heads and the query heads
// that read them), the feed-forward rows by whole quantization blocks of Wdown, and when
// they do not divide by the number of ranks the first ranks take one group or block more.
// A quantized row is a sequence of blocks, so a column split must fall on block
// boundaries; a split inside a block is refused with an error naming the tensor.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace tessera {

// Elements [begin, begin + count) of a dimension.
struct Span {
  int64_t begin = 0;
  int64_t count = 0;
};

// Part `rank` of `n` elements split into `size` parts of whole granules (n / granule of
// them), as equal as possible: the first (n / granule) % size parts hold one granule more.
// Throws tessera::Error naming `what` when n is not a multiple of granule or has fewer
// granules than size (a rank would get nothing).
Span shard_span(int64_t n, int rank, int size, const std::string& what, int64_t granule = 1);

// The activation kernels (silu_mul, gelu_mul) run this many values of a row at a time and
// the rest of the row apart, with other arithmetic.
constexpr int64_t kActivationWidth = 16;

// Part `rank` of the n hidden rows of a feed-forward block whose down matrix is stored in
// blocks of `block` columns. Rows are split on multiples of lcm(block, kActivationWidth),
// the rest (fewer rows than that) on the last rank, so that each rank's rows meet the
// activation kernels as one process's do (F32: 172 rows on 2 ranks are 80 and 92; 24 rows
// are 16 and 8). When there are too few such groups for every rank: rows fewer than
// kActivationWidth (every value takes the per-value path, split or not) are split on whole
// blocks; so are the others unless `exact` (bit-exact tensor parallelism) is asked, which
// they cannot give: then tessera::Error naming `what`.
Span ffn_span(int64_t n, int64_t block, int rank, int size, const std::string& what, bool exact);

// The attention heads a rank keeps.
struct HeadShard {
  Span q_heads;   // of n_head: contiguous, so its KV heads are contiguous too
  Span kv_heads;  // of n_head_kv: the KV heads its query heads read
};

// Heads split by GQA groups (query head h reads KV head h / (n_head / n_head_kv)):
//   n_head_kv >= size: the KV heads are split by shard_span and each rank takes the query
//     heads of its KV heads (9 heads, 3 KV heads, 2 ranks: KV 0-1 = q 0-5, KV 2 = q 6-8);
//   n_head_kv < size (MQA, small GQA): the ranks are split among the KV heads by
//     shard_span, every rank of a KV head holds it, and its group of query heads is split
//     among them.
// Throws tessera::Error when n_head is not a multiple of n_head_kv or a rank would get no
// query head.
HeadShard head_span(int64_t n_head, int64_t n_head_kv, int rank, int size);

// How one matrix is split across the ranks.
struct ShardPlan {
  // Column-parallel: the stored rows this rank keeps, in order (several ranges for fused
  // matrices: QKV keeps its q, k and v rows). Empty: every row.
  std::vector<Span> rows;
  // Row-parallel: the columns (the input dimension) this rank keeps. count 0: every column.
  Span cols;
};

// The rank's shard of the plain (not repacked) 2-D matrix w, copied into memory appended
// to `storage`: [the rows of plan.rows (or all), the columns of plan.cols (or all)].
// Throws tessera::Error naming `name` when a column split falls inside a quantization block.
Tensor shard_weight(const Tensor& w, const std::string& name, const ShardPlan& plan,
                    std::vector<std::unique_ptr<uint8_t[]>>& storage);

}  // namespace tessera
