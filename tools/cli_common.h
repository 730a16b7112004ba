// Shared pieces of the `tessera` subcommands.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

namespace tessera {
struct ModelOptions;
}

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
Runner add_logits(CLI::App& app);

// Reads a whole file; throws tessera::Error naming the path when it cannot.
std::string read_file(const std::string& path);

}  // namespace tessera::cli
