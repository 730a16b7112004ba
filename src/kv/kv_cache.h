// KV cache storage: per layer, one K and one V array of n_blocks * block_size slots,
// each slot a row of kv_dim values (fp16 by default, or f32). Which slots a sequence uses is
// decided elsewhere (a block table per sequence); this class only owns the memory.
//
//   layer l:  K[l] = [ block 0: slot 0 .. B-1 | block 1: slot B .. 2B-1 | ... ]  x kv_dim
#pragma once
#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace tessera {

class KVCache {
 public:
  KVCache(Backend& backend, int n_layer, int kv_dim, int n_blocks, int block_size,
          DType type = DType::F16);
  ~KVCache();
  KVCache(const KVCache&) = delete;
  KVCache& operator=(const KVCache&) = delete;

  KVLayer layer(int l) const { return layers_[l]; }
  int n_blocks() const { return n_blocks_; }
  int block_size() const { return block_size_; }
  int64_t n_slots() const { return static_cast<int64_t>(n_blocks_) * block_size_; }
  size_t bytes() const;
  DType type() const { return type_; }
  // Bytes one token occupies across all layers (K and V).
  static size_t bytes_per_token(int n_layer, int kv_dim, DType type = DType::F16) {
    return (type == DType::F32 ? 4 : 2) * 2 * static_cast<size_t>(n_layer) * kv_dim;
  }

 private:
  Backend& backend_;
  int n_layer_, kv_dim_, n_blocks_, block_size_;
  DType type_;
  std::vector<KVLayer> layers_;
};

}  // namespace tessera
