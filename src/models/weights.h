// Weight lookup shared by the model families: a GGUF tensor as a Tensor view, its shape
// checked against what the architecture expects.
#pragma once
#include <initializer_list>
#include <string>

#include "core/tensor.h"

namespace tessera {
namespace gguf {
class Source;
}

// Tensor `name` of `f`, viewed in place. `shape` lists its dimensions in ggml order
// (ne[0] first); -1 accepts any size; dimensions past the list must be 1. Absent: an empty
// Tensor, or tessera::Error when `required`. A shape mismatch is a tessera::Error naming the
// tensor and the dimension.
Tensor find_weight(const gguf::Source& f, const std::string& name,
                   std::initializer_list<int64_t> shape, bool required);

}  // namespace tessera
