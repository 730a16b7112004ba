// Baichuan (arch "baichuan"). The 7B is a Llama decoder with RoPE. The 13B replaces RoPE
// by ALiBi: score(i, j) += slope_h · (j - i), slopes from a maximum bias of 8. GGUF has no
// key for that choice; as llama.cpp, the 40-layer (13B) model uses ALiBi, and a file may
// say so explicitly with `attention.max_alibi_bias`.
#include "loader/gguf.h"
#include "models/decoder.h"
#include "models/families.h"

namespace tessera {

std::unique_ptr<Model> make_baichuan_model(std::unique_ptr<gguf::Source> file,
                                           const std::string& arch, const ModelOptions& opts) {
  const ModelConfig c = read_model_config(*file, arch);
  DecoderFeatures f;
  f.alibi_max_bias = static_cast<float>(
      file->get_float(arch + ".attention.max_alibi_bias").value_or(c.n_layer == 40 ? 8.0 : 0.0));
  return make_decoder_model(std::move(file), arch, opts, f);
}

}  // namespace tessera
