#include "models/shard.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "core/error.h"

namespace tessera {

Span shard_span(int64_t n, int rank, int size, const std::string& what, int64_t granule) {
  if (size < 1 || rank < 0 || rank >= size || granule < 1)
    throw Error("internal: rank outside the group");
  if (n % granule != 0)
    throw Error(what + " (" + std::to_string(n) + ") is not a multiple of " +
                std::to_string(granule));
  const int64_t units = n / granule;
  if (units < size)
    throw Error(what + " (" + std::to_string(n) +
                (granule > 1
                     ? ", " + std::to_string(units) + " blocks of " + std::to_string(granule)
                     : std::string()) +
                ") cannot be split among " + std::to_string(size) +
                " tensor-parallel ranks: one would get none");
  const int64_t base = units / size, extra = units % size;
  const int64_t begin = rank * base + std::min<int64_t>(rank, extra);
  const int64_t count = base + (rank < extra ? 1 : 0);
  return {begin * granule, count * granule};
}

Span ffn_span(int64_t n, int64_t block, int rank, int size, const std::string& what, bool exact) {
  if (size == 1) return {0, n};
  const int64_t granule = std::lcm(block, kActivationWidth);
  const int64_t rest = n % granule % block == 0 ? n % granule : 0;
  const int64_t groups = (n - rest) / granule;
  if (groups >= size) {
    Span s = shard_span(n - rest, rank, size, what, granule);
    if (rank == size - 1) s.count += rest;
    return s;
  }
  if (rest > 0 && groups == size - 1)  // one group each, the rest on the last rank
    return rank < size - 1 ? Span{rank * granule, granule} : Span{groups * granule, rest};
  if (n < kActivationWidth || !exact) return shard_span(n, rank, size, what, block);
  throw Error(what + " (" + std::to_string(n) + ") cannot be split among " + std::to_string(size) +
              " tensor-parallel ranks in groups of " + std::to_string(granule) +
              " rows, as bit-exact tensor parallelism needs");
}

HeadShard head_span(int64_t n_head, int64_t n_head_kv, int rank, int size) {
  if (n_head_kv < 1 || n_head % n_head_kv != 0)
    throw Error("the number of attention heads (" + std::to_string(n_head) +
                ") is not a multiple of the number of KV heads (" + std::to_string(n_head_kv) +
                ")");
  const int64_t group = n_head / n_head_kv;
  if (n_head_kv >= size) {
    const Span kv = shard_span(n_head_kv, rank, size, "the number of KV heads");
    return {{kv.begin * group, kv.count * group}, kv};
  }
  // Fewer KV heads than ranks: KV head k is held by the ranks of part k of the ranks.
  for (int64_t k = 0; k < n_head_kv; ++k) {
    const Span ranks = shard_span(size, static_cast<int>(k), static_cast<int>(n_head_kv), "ranks");
    if (rank < ranks.begin || rank >= ranks.begin + ranks.count) continue;
    const Span q =
        shard_span(group, static_cast<int>(rank - ranks.begin), static_cast<int>(ranks.count),
                   "the query heads of KV head " + std::to_string(k));
    return {{k * group + q.begin, q.count}, {k, 1}};
  }
  throw Error("internal: rank outside the group");
}

Tensor shard_weight(const Tensor& w, const std::string& name, const ShardPlan& plan,
                    std::vector<std::unique_ptr<uint8_t[]>>& storage) {
  if (is_repacked(w.type)) throw Error("internal: sharding a row-interleaved weight");
  if (w.ne[2] != 1 || w.ne[3] != 1)
    throw Error("tensor '" + name + "': tensor parallelism splits 2-D matrices only");
  const int64_t rows = w.rows(), cols = w.cols();

  std::vector<Span> row_ranges = plan.rows;
  if (row_ranges.empty()) row_ranges.push_back({0, rows});
  for (const Span& r : row_ranges)
    if (r.begin < 0 || r.count < 0 || r.begin + r.count > rows)
      throw Error("internal: rows outside tensor '" + name + "'");
  const bool split_cols = plan.cols.count > 0;
  const Span col = split_cols ? plan.cols : Span{0, cols};
  if (col.begin < 0 || col.begin + col.count > cols)
    throw Error("internal: columns outside tensor '" + name + "'");
  const int64_t block = dtype_info(w.type).block_size;
  if (col.begin % block != 0 || col.count % block != 0)
    throw Error("tensor '" + name + "' (" + dtype_info(w.type).name + ", blocks of " +
                std::to_string(block) + " values) cannot be split at columns " +
                std::to_string(col.begin) + "-" + std::to_string(col.begin + col.count) +
                ": the split would cut a quantization block");

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
    if (!split_cols) {  // whole rows: one contiguous range of the stored matrix
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
