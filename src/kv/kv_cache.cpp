#include "kv/kv_cache.h"

namespace tessera {

KVCache::KVCache(Backend& backend, int n_layer, int kv_dim, int n_blocks, int block_size)
    : backend_(backend),
      n_layer_(n_layer),
      kv_dim_(kv_dim),
      n_blocks_(n_blocks),
      block_size_(block_size) {
  // fp16 rows: two values per float of the backend's allocation unit.
  const int64_t n = (n_slots() * kv_dim + 1) / 2;
  for (int l = 0; l < n_layer; ++l)
    layers_.push_back({reinterpret_cast<uint16_t*>(backend.alloc(n)),
                       reinterpret_cast<uint16_t*>(backend.alloc(n))});
}

KVCache::~KVCache() {
  for (auto& l : layers_) {
    backend_.free_buffer(reinterpret_cast<float*>(l.k));
    backend_.free_buffer(reinterpret_cast<float*>(l.v));
  }
}

size_t KVCache::bytes() const { return bytes_per_token(n_layer_, kv_dim_) * n_slots(); }

}  // namespace tessera
