// Model-loading options shared by the subcommands that load a model.
#include "cli_common.h"
#include "models/model.h"
#include "models/weight_quant.h"

namespace tessera::cli {

void add_model_load_options(CLI::App& app, ModelOptions& mo) {
  app.add_option(
      "--quantization", mo.quantization,
      std::string("convert F32/F16/BF16 weight matrices while loading: ") + weight_type_names());
  app.add_option("--load-format", mo.load_format,
                 "auto (GGUF file or Hugging Face directory), gguf, hf, or dummy (random "
                 "weights shaped by an HF config.json)")
      ->check(CLI::IsMember({"auto", "gguf", "hf", "dummy"}));
  app.add_option("--dummy-seed", mo.dummy_seed, "seed of the dummy weights");
  app.add_option("--kv-cache-dtype", mo.kv_cache_type,
                 "KV cache storage: f16 (default, as llama.cpp) or f32 (exact attention)")
      ->check(CLI::IsMember({"f16", "f32"}));
  app.add_flag(
      "!--no-repack", mo.repack,
      "keep Q4_0/Q8_0 matrices in the file's row layout (by default they are interleaved "
      "8 rows at a time at load on CPUs with AVX-512 VNNI, for faster decode; same results)");
}

}  // namespace tessera::cli
