// InternLM2 (arch "internlm2"): a Llama decoder. Its fused, head-interleaved `wqkv` is split
// into attn_q/attn_k/attn_v by the GGUF converter, so the forward pass is Llama's: RMSNorm,
// GQA attention with (2i, 2i+1) RoPE, SwiGLU.
#include "loader/gguf.h"
#include "models/decoder.h"
#include "models/families.h"

namespace tessera {

std::unique_ptr<Model> make_internlm2_model(std::unique_ptr<gguf::Source> file,
                                            const std::string& arch, const ModelOptions& opts) {
  return make_decoder_model(std::move(file), arch, opts, DecoderFeatures{});
}

}  // namespace tessera
