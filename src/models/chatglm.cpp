// ChatGLM2/3 (arch "chatglm") and GLM-4 (arch "glm4").
//   - RoPE on the first rope.dimension_count dims of each head only (half of it), pairs
//     (2i, 2i+1);
//   - QKV with biases (fused attn_qkv in ChatGLM files, separate in GLM-4's);
//   - fused gate+up projection: ffn_up holds [Wgate; Wup], SwiGLU;
//   - GLM-4 adds norms after both blocks:  x += n_post(attn(n(x))),  x += n_post(ffn(n(x))).
#include "loader/gguf.h"
#include "models/decoder.h"
#include "models/families.h"

namespace tessera {

std::unique_ptr<Model> make_chatglm_model(std::unique_ptr<gguf::Source> file,
                                          const std::string& arch, const ModelOptions& opts) {
  DecoderFeatures f;
  f.ffn = FfnKind::SWIGLU_FUSED;
  f.post_norms = arch == "glm4";
  return make_decoder_model(std::move(file), arch, opts, f);
}

}  // namespace tessera
