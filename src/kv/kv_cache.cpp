#include "kv/kv_cache.h"

#include <string>

#include "core/error.h"

namespace tessera {

KVCache::KVCache(Backend& backend, int n_layer, int kv_dim, int n_blocks, int block_size,
                 DType type)
    : backend_(backend),
      n_layer_(n_layer),
      kv_dim_(kv_dim),
      n_blocks_(n_blocks),
      block_size_(block_size),
      type_(type) {
  if (type != DType::F16 && type != DType::F32)
    throw Error(std::string("unsupported KV cache type ") + dtype_name(type));
  // The backend allocates in floats: fp16 rows take half as many.
  const int64_t values = n_slots() * kv_dim;
  const int64_t n = type == DType::F16 ? (values + 1) / 2 : values;
  for (int l = 0; l < n_layer; ++l) layers_.push_back({type, backend.alloc(n), backend.alloc(n)});
}

KVCache::~KVCache() {
  for (auto& l : layers_) {
    backend_.free_buffer(static_cast<float*>(l.k));
    backend_.free_buffer(static_cast<float*>(l.v));
  }
}

size_t KVCache::bytes() const {
  return bytes_per_token(n_layer_, kv_dim_, type_) * n_slots();
}

}  // namespace tessera
