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

// The type a matrix of type `from` with rows of `cols` elements gets when converted to
// `to`: `from` itself when it is already quantized, `to` when the rows split into its
// blocks, else F16 (or `from` when that is F16/BF16), as llama-quantize falls back.
DType converted_type(DType from, int64_t cols, DType to);

// A copy of `w` converted to converted_type(w.type, w.cols(), to), its bytes held in
// `storage`; `w` itself when that is w.type. Uses up to n_threads threads (<= 0: all cores).
Tensor convert_weight(const Tensor& w, DType to, std::vector<std::unique_ptr<uint8_t[]>>& storage,
                      int n_threads);

}  // namespace tessera
