// Tensor-parallel sharding of weight matrices (Megatron-style), as each rank loads them.
//
// A matrix W is stored [rows, cols] row-major: y = W·x maps cols inputs to rows outputs.
//   column-parallel (Wq, Wk, Wv, Wgate, Wup): the output rows are split; rank r keeps
//     rows [r*rows/T, (r+1)*rows/T) (whole heads when rows = heads * head_dim), one
//     contiguous range of the stored matrix, and computes its slice of y;
//   row-parallel (Wo, Wdown): the input columns are split; rank r keeps columns
//     [r*cols/T, (r+1)*cols/T) of every row (a strided copy), computes a partial y over
//     its slice of x, and the ranks' partials are summed (an all-reduce).
// A quantized row is a sequence of blocks, so a column split must fall on block
// boundaries; a split inside a block is refused with an error naming the tensor. With
// fewer KV heads than ranks (MQA, small GQA) each KV head's rows of Wk/Wv are held by
// every rank whose query heads read it (head_span).
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

// Part `rank` of `n` split into `size` equal parts. Throws tessera::Error naming `what`
// when n is not a multiple of size.
Span shard_span(int64_t n, int rank, int size, const std::string& what);

// The heads (of n_heads) that rank keeps: n_heads / size consecutive heads when size
// divides n_heads; one head when n_heads divides size (fewer KV heads than ranks, as in
// MQA), each head then held by size / n_heads consecutive ranks. Throws tessera::Error
// naming `what` otherwise.
Span head_span(int64_t n_heads, int rank, int size, const std::string& what);

// How one matrix is split across the ranks.
struct ShardPlan {
  // Column-parallel: the stored rows this rank keeps, in order (several ranges for fused
  // matrices: QKV keeps its q, k and v rows). Empty: every row.
  std::vector<Span> rows;
  // Row-parallel: the columns (the input dimension) are split into `size` equal slices and
  // the rank keeps slice `rank`.
  bool split_cols = false;
};

// The rank's shard of the plain (not repacked) 2-D matrix w, copied into memory appended
// to `storage`: [the rows of plan.rows (or all), cols / size (or all cols)]. Throws
// tessera::Error naming `name` when the columns do not divide by size or a column split
// falls inside a quantization block.
Tensor shard_weight(const Tensor& w, const std::string& name, const ShardPlan& plan, int rank,
                    int size, std::vector<std::unique_ptr<uint8_t[]>>& storage);

}  // namespace tessera
