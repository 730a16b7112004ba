// The Llama family: Llama 2/3, SmolLM2, Mistral (arch "llama"/"mistral") and Qwen2
// (arch "qwen2": QKV biases, NeoX RoPE) — the plain case of the shared decoder:
//
//   x = embed(tokens)
//   for each layer:  x += Wo · attn(rope(Wq·n(x)), rope(Wk·n(x)), Wv·n(x))
//                    x += Wdown · (silu(Wgate·n(x)) * Wup·n(x))
//   logits = Wout · n(x)
#include "loader/gguf.h"
#include "models/decoder.h"
#include "models/families.h"

namespace tessera {

std::unique_ptr<Model> make_llama_model(std::unique_ptr<gguf::Source> file, const std::string& arch,
                                        const ModelOptions& opts) {
  DecoderFeatures f;
  f.rope_neox = arch == "qwen2";  // biases are picked up when the file has them
  return make_decoder_model(std::move(file), arch, opts, f);
}

}  // namespace tessera
