// Phi-3 (arch "phi3"): the Llama decoder with fused projections — attn_qkv holds
// [Wq; Wk; Wv] and ffn_up holds [Wgate; Wup] — and NeoX RoPE. LongRoPE ("su") files carry
// per-dimension frequency divisors rope_factors_short/long and a cos/sin magnitude
// `rope.scaling.attn_factor`; the short factors are used (contexts up to the original
// training length). Phi-3's sliding window is ignored, as llama.cpp does.
#include "loader/gguf.h"
#include "models/decoder.h"
#include "models/families.h"

namespace tessera {

std::unique_ptr<Model> make_phi3_model(std::unique_ptr<gguf::Source> file, const std::string& arch,
                                       const ModelOptions& opts) {
  DecoderFeatures f;
  f.rope_neox = true;
  f.ffn = FfnKind::SWIGLU_FUSED;
  return make_decoder_model(std::move(file), arch, opts, f);
}

}  // namespace tessera
