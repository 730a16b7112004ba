// Shared pieces of the `tessera` subcommands.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "core/file.h"  // read_file, used by most subcommands

namespace tessera {
namespace dist {
class Communicator;
}  // namespace dist
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

// Multi-process runs (tools/parallel_options.cpp). main() records the command line first.
void set_command_line(int argc, char** argv);
struct ParallelOptions {
  int tensor_parallel_size = 1;
  int pipeline_parallel_size = 1;  // ModelOptions::pipeline_parallel_size
  bool exact = false;              // ModelOptions::tp_exact
};
// --tensor-parallel-size (--tp), --pipeline-parallel-size (--pp), --tp-exact.
void add_parallel_options(CLI::App& app, ParallelOptions& po);
struct ParallelRun {
  dist::Communicator* comm = nullptr;  // every rank of the run (ModelOptions::comm); null: one
  int rank = 0;
  int pipeline_parallel_size = 1;
  bool exact = false;
  bool is_root() const { return rank == 0; }
  // A random seed, the same on every rank (rank 0's). Collective.
  uint64_t shared_seed() const;
  // Sets mo's comm, pipeline_parallel_size and tp_exact for this run.
  void configure(ModelOptions& mo) const;
};
// Joins the run's processes when this one was started by mpirun or the command asks for
// more than one rank. Checks (on every rank, together) that the world size equals
// --tensor-parallel-size times --pipeline-parallel-size and that every rank has the same
// model file (name, size, head) and command line: dist::CollectiveError otherwise. Ranks other than
// 0 then write nothing to stdout. Error when more than one rank is asked for outside mpirun.
ParallelRun start_parallel(const ParallelOptions& po, const std::string& model_path);
// Runs load (a model's loading) on every rank of `par`: an Error on any rank ends every rank
// together with that error (dist::on_all_ranks); in one process, the Error as it is.
void load_on_all_ranks(const ParallelRun& par, const std::function<void()>& load);

}  // namespace tessera::cli
