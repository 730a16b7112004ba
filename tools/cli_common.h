// Shared pieces of the `tessera` subcommands.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

#include "core/file.h"  // read_file, used by most subcommands

namespace tessera {
struct ModelOptions;
struct EmbedOptions;
struct SpeculativeConfig;
}  // namespace tessera

namespace tessera::cli {

// Each subcommand registers its options on `app` and returns the function to run.
using Runner = std::function<int()>;
Runner add_run(CLI::App& app);
Runner add_perplexity(CLI::App& app);
Runner add_tokenize(CLI::App& app);
Runner add_info(CLI::App& app);
Runner add_serve(CLI::App& app);
Runner add_bench(CLI::App& app);
Runner add_convert(CLI::App& app);

// --quantization, --load-format, --dummy-seed (tools/model_options.cpp).
void add_model_load_options(CLI::App& app, ModelOptions& mo);
// --task, --pooling, --normalize / --no-normalize (tools/model_options.cpp); `serve` also
// offers --task generate.
void add_embed_options(CLI::App& app, EmbedOptions& eo, bool serve);
// --speculative-method, --speculative-model, --num-speculative-tokens, --ngram-min/max,
// --speculative-disable-by-batch-size (tools/speculative_options.cpp). After parsing,
// finish_speculative_options applies the default K and throws Error for bad settings.
CLI::Option* add_speculative_options(CLI::App& app, SpeculativeConfig& sc);  // returns K's
void finish_speculative_options(SpeculativeConfig& sc, bool k_given);
Runner add_logits(CLI::App& app);
Runner add_embed(CLI::App& app);

}  // namespace tessera::cli
