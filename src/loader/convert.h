// Model conversion to GGUF (`tessera convert`): any gguf::Source whose metadata can be
// listed (a Hugging Face directory, a GGUF file) is written as a GGUF v3 file that both
// Tessera and llama.cpp load.
//
// Tensor types: 1-D tensors (norms, biases, rope_freqs) and BERT's position and token-type
// tables F32; other F32/F16/BF16 matrices,
// token embeddings included, in the requested type (F16 when their rows do not split into
// the type's blocks); already-quantized tensors are copied. When the source carries
// tessera.rope.neox (HF Llama-family Q/K in rotate-half order) and the architecture's GGUF
// layout is the interleaved one, the Q/K rows (and biases) are permuted head by head, as
// GGUF's llama converter does, and the key is dropped.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "loader/gguf.h"

namespace tessera {

struct ConvertStats {
  int n_tensors = 0;
  int n_permuted = 0;  // Q/K tensors reordered for the interleaved RoPE
  uint64_t n_bytes = 0;
};

// `kv` is the complete metadata of `src` (MemorySource::metadata() / File::metadata()).
// Quantized matrices are copied as they are unless `requantize`: then they are
// dequantized and stored as `type` too (e.g. an F16 model made from a Q4_1 one).
ConvertStats convert_to_gguf(const gguf::Source& src,
                             const std::vector<std::pair<std::string, gguf::Value>>& kv,
                             const std::string& out_path, DType type, bool requantize = false);

// Row permutation from rotate-half (HF) to interleaved (GGUF llama) order for a Q or K
// projection of n_head heads of head_dim rows: interleaved row h*hd + 2i + s comes from
// rotate-half row h*hd + s*hd/2 + i. Returns, for each destination row, its source row.
std::vector<int64_t> rope_interleave_rows(int64_t n_head, int64_t head_dim);

// llama.cpp's general.file_type value for a weight type.
uint32_t gguf_file_type(DType t);

}  // namespace tessera
