// Model-loading options shared by the subcommands that load a model.
#include "cli_common.h"
#include "embed/embedding.h"
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
  app.add_option("--backend", mo.backend,
                 std::string("what runs the model's operations: cpu (default: SIMD kernels, a "
                             "thread pool) or ref (the scalar references, one thread; slow, for "
                             "checking)"))
      ->check(CLI::IsMember({"cpu", "ref"}))
      ->capture_default_str();
}

void add_embed_options(CLI::App& app, EmbedOptions& eo, bool serve) {
  if (serve)
    app.add_option("--task", eo.task,
                   "what to serve: auto (encoders: embed or score; decoders: generate), "
                   "generate, embed (/v1/embeddings, any decoder: pooled hidden states), "
                   "score (cross-encoders: /v1/rerank, /v1/score)")
        ->check(CLI::IsMember({"auto", "generate", "embed", "score"}))
        ->capture_default_str();
  else
    app.add_option("--task", eo.task, "auto, embed (decoders: pooled hidden states) or score")
        ->check(CLI::IsMember({"auto", "embed", "score"}))
        ->capture_default_str();
  app.add_option("--pooling", eo.pooling,
                 "embedding pooling: mean, cls (first token) or last (default: the model's "
                 "sentence-transformers configuration, else cls for encoders, last for decoders)")
      ->check(CLI::IsMember({"mean", "cls", "last"}));
  app.add_flag_function(
      "--normalize,!--no-normalize", [&eo](int64_t n) { eo.normalize = n > 0; },
      "L2-normalize embeddings (default: as the model's files say, else yes)");
}

}  // namespace tessera::cli
