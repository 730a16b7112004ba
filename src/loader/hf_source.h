// Hugging Face model directories, translated into a gguf::Source in memory:
//
//   config.json            -> general.architecture + <arch>.* keys (as GGUF converters name them)
//   *.safetensors (+ index) -> tensors under GGUF names (blk.N.attn_q.weight ...), data left in
//                             the mapped files; 1-D tensors (norms, biases) converted to F32
//   tokenizer files        -> tokenizer.ggml.* keys (see hf_tokenizer.h)
//
// Architectures: Llama, Mistral (sliding window kept), Mixtral, Qwen2, Qwen2-MoE, Qwen3,
// Qwen3-MoE, Gemma 3 (text), Phi-3 (LongRoPE included), GLM-4. MoE experts, stored one
// matrix per expert, are stacked into GGUF's 3-D ffn_*_exps tensors (copies); Gemma's
// (1 + w) RMSNorm weights become F32 copies holding 1 + w, as GGUF stores them; Phi-3's and
// GLM-4's fused qkv_proj / gate_up_proj map to attn_qkv / ffn_up unchanged.
//
// Q/K projections: HF Llama-family checkpoints lay each head's rows out for the rotate-half
// ("NeoX") RoPE, while GGUF's llama converter permutes them for the interleaved RoPE.
// Instead of permuting here, the source publishes kRopeNeoxKey = true and the model uses
// the NeoX rotation; `tessera convert` permutes when it writes a GGUF (see convert.h).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "loader/gguf.h"

namespace tessera::gguf {
class MemorySource;
}
namespace tessera::safetensors {
struct TensorView;
}

namespace tessera::hf {

// Metadata key: the Q/K weights are in rotate-half order, use the NeoX RoPE.
inline constexpr const char* kRopeNeoxKey = "tessera.rope.neox";

struct LoadOptions {
  // Build every tensor the architecture needs from config.json with random values
  // (deterministic in `seed`) instead of reading safetensors. Llama, Mistral and Qwen2 only.
  bool dummy_weights = false;
  uint64_t seed = 0;
  DType dummy_type = DType::F16;  // matrices; F16 or a type quant::quantize_row writes
};

// `path`: a directory with config.json, safetensors and tokenizer files; with
// dummy_weights also a config.json file (tokenizer files beside it are used when present,
// otherwise a byte-level vocabulary of vocab_size tokens is made up).
// Throws tessera::Error for missing or malformed files and unsupported architectures.
std::unique_ptr<gguf::Source> open_hf_directory(const std::string& path,
                                                const LoadOptions& opts = {});

// True when `path` looks like an HF model: a directory, or a file named config.json.
bool is_hf_path(const std::string& path);

// HF architectures (config.json "architectures") this build translates.
std::vector<std::string> supported_hf_architectures();

// Each HF architecture with the GGUF architecture it becomes and whether dummy weights
// can be built for its shape.
struct HfArchitecture {
  std::string hf_arch, arch;
  bool dummy;
};
std::vector<HfArchitecture> hf_architecture_table();

// A checkpoint tensor (1 to 4 dimensions, F32 / F16 / BF16) as the GGUF tensor `name`:
// 1-D tensors become F32 copies that `src` owns (norm weights and biases are read as F32);
// the others stay in the mapped file, copied only when misaligned for their element type.
// Throws tessera::Error for other dtypes and shapes.
gguf::TensorInfo tensor_from_checkpoint(const safetensors::TensorView& t, const std::string& name,
                                        gguf::MemorySource& src);

// Llama 3 RoPE frequency factors ("rope_type": "llama3"): one divisor of theta per
// dimension pair, [n_rot / 2].
std::vector<float> llama3_rope_factors(int n_rot, double freq_base, double factor,
                                       double low_freq_factor, double high_freq_factor,
                                       double original_context);

}  // namespace tessera::hf
