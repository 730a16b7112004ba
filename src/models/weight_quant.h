// Load-time conversion of weight matrices to another type (ModelOptions::quantization):
// F32 / F16 / BF16 matrices are quantized row by row with the reference quantizers
// (the same rounding as ggml's, so a Q8_0 made here equals llama-quantize's Q8_0 of the
// same weights). Already-quantized matrices are left as they are.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace tessera {

// Names accepted by --quantization: q8_0 q4_0 q4_1 q5_0 q5_1 f16 bf16 f32 (any case).
// "" and "none" give nullopt. Throws tessera::Error for other names.
std::optional<DType> parse_weight_type(std::string_view name);
// The accepted names, for help texts and messages.
const char* weight_type_names();

// Whether `t` (a matrix of this type and row length) would be converted to `to`.
bool should_convert(DType from, int64_t cols, DType to);

// A copy of `w` converted to `to`, its bytes held in `storage`; `w` itself when
// should_convert() is false. Uses up to n_threads threads (<= 0: all cores).
Tensor convert_weight(const Tensor& w, DType to, std::vector<std::unique_ptr<uint8_t[]>>& storage,
                      int n_threads);

}  // namespace tessera
