// Qwen3 (arch "qwen3"): the Llama decoder with QK-norm — an RMSNorm over each head of q
// and k before RoPE — and NeoX RoPE; no QKV biases.
//
//   q = rope(n_head(Wq·n(x))), k = rope(n_head(Wk·n(x))), v = Wv·n(x)
//   x += Wo · attn(q, k, v);  x += Wdown · (silu(Wgate·n(x)) * Wup·n(x))
#include "loader/gguf.h"
#include "models/decoder.h"
#include "models/families.h"

namespace tessera {

std::unique_ptr<Model> make_qwen3_model(std::unique_ptr<gguf::Source> file, const std::string& arch,
                                        const ModelOptions& opts) {
  DecoderFeatures f;
  f.rope_neox = true;
  f.qk_norm = true;
  return make_decoder_model(std::move(file), arch, opts, f);
}

}  // namespace tessera
