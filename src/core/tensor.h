// Non-owning view of a weight tensor (usually pointing into the GGUF mapping).
#pragma once
#include <cassert>
#include <cstdint>

#include "core/dtype.h"

namespace tessera {

struct Tensor {
  DType type = DType::F32;
  int64_t ne[4] = {1, 1, 1, 1};  // ne[0]: elements per row (contiguous), ne[1..]: rows
  const void* data = nullptr;

  explicit operator bool() const { return data != nullptr; }
  int64_t cols() const { return ne[0]; }
  int64_t rows() const { return ne[1] * ne[2] * ne[3]; }
  size_t row_bytes() const { return row_size(type, ne[0]); }
  // Row r's bytes. For a repacked type (is_repacked) rows are interleaved kRepackRows at a
  // time, so only r % kRepackRows == 0 is valid: the start of that row's group.
  const uint8_t* row(int64_t r) const {
    assert(!is_repacked(type) || r % kRepackRows == 0);
    return static_cast<const uint8_t*>(data) + static_cast<size_t>(r) * row_bytes();
  }
};

}  // namespace tessera
