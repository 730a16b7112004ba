// Mistral with sliding-window attention: the Llama decoder in which every layer attends to
// the last `attention.sliding_window` positions only. (Files without the key load as
// plain Llama; llama.cpp's converter does not write it, so only files that carry it get
// the window.)
#include "loader/gguf.h"
#include "models/decoder.h"
#include "models/families.h"

namespace tessera {

std::unique_ptr<Model> make_mistral_model(std::unique_ptr<gguf::Source> file,
                                          const std::string& arch, const ModelOptions& opts) {
  const ModelConfig c = read_model_config(*file, arch);
  DecoderFeatures f;
  f.n_swa = static_cast<int>(file->get_int(arch + ".attention.sliding_window").value_or(0));
  if (f.n_swa > 0) f.swa_layers.assign(c.n_layer, true);
  return make_decoder_model(std::move(file), arch, opts, f);
}

}  // namespace tessera
