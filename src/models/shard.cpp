#include "models/shard.h"

#include <cstring>

#include "core/error.h"

namespace tessera {

Span shard_span(int64_t n, int rank, int size, const std::string& what) {
  if (size < 1 || rank < 0 || rank >= size) throw Error("internal: rank outside the group");
  if (n % size != 0)
    throw Error(what + " (" + std::to_string(n) + ") does not divide by the tensor-parallel size " +
                std::to_string(size));
  return {n / size * rank, n / size};
}

Span head_span(int64_t n_heads, int rank, int size, const std::string& what) {
  if (size < 1 || rank < 0 || rank >= size) throw Error("internal: rank outside the group");
  if (n_heads % size == 0) return {n_heads / size * rank, n_heads / size};
  if (size % n_heads == 0) return {rank / (size / n_heads), 1};
  throw Error(what + " (" + std::to_string(n_heads) + ") does not divide by the tensor-parallel " +
              "size " + std::to_string(size) + ", nor the size by it");
}

Tensor shard_weight(const Tensor& w, const std::string& name, const ShardPlan& plan, int rank,
                    int size, std::vector<std::unique_ptr<uint8_t[]>>& storage) {
  if (is_repacked(w.type)) throw Error("internal: sharding a row-interleaved weight");
  if (w.ne[2] != 1 || w.ne[3] != 1)
    throw Error("tensor '" + name + "': tensor parallelism splits 2-D matrices only");
  const int64_t rows = w.rows(), cols = w.cols();

  std::vector<Span> row_ranges = plan.rows;
  if (row_ranges.empty()) row_ranges.push_back({0, rows});
  for (const Span& r : row_ranges)
    if (r.begin < 0 || r.count < 0 || r.begin + r.count > rows)
      throw Error("internal: rows outside tensor '" + name + "'");
  Span col = {0, cols};
  if (plan.split_cols) {
    col = shard_span(cols, rank, size, "columns of tensor '" + name + "'");
    const int64_t block = dtype_info(w.type).block_size;
    if (col.begin % block != 0 || col.count % block != 0)
      throw Error("tensor '" + name + "' (" + dtype_info(w.type).name + ", blocks of " +
                  std::to_string(block) + " values) cannot be split into " + std::to_string(size) +
                  " column slices of " + std::to_string(col.count) +
                  ": the split would cut a quantization block");
  }

  int64_t n_rows = 0;
  for (const Span& r : row_ranges) n_rows += r.count;
  Tensor out = w;
  out.ne[0] = col.count;
  out.ne[1] = n_rows;
  const size_t out_row = out.row_bytes();
  // The column offset in bytes: whole blocks, so row_size gives it exactly.
  const size_t col_offset = row_size(w.type, col.begin);
  storage.emplace_back(new uint8_t[out_row * static_cast<size_t>(n_rows)]);
  uint8_t* dst = storage.back().get();
  for (const Span& r : row_ranges) {
    if (!plan.split_cols) {  // whole rows: one contiguous range of the stored matrix
      std::memcpy(dst, w.row(r.begin), out_row * static_cast<size_t>(r.count));
      dst += out_row * static_cast<size_t>(r.count);
      continue;
    }
    for (int64_t i = r.begin; i < r.begin + r.count; ++i, dst += out_row)
      std::memcpy(dst, w.row(i) + col_offset, out_row);
  }
  out.data = storage.back().get();
  return out;
}

}  // namespace tessera
