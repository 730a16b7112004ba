// `tessera`: one binary, one subcommand per job. stdout carries only results; logs,
// progress and timings go to stderr. Bad input ends with a message and exit code 1.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "cli_common.h"
#include "core/error.h"
#include "core/progress.h"
#include "dist/runtime.h"

namespace tessera::cli {
Runner add_bench_comm(CLI::App& app);  // cmd_bench_comm.cpp
}  // namespace tessera::cli

int main(int argc, char** argv) {
  using namespace tessera;
  CLI::App app{"Tessera: LLM inference and serving engine"};
  app.require_subcommand(1);
  std::map<CLI::App*, cli::Runner> runners;
  auto sub = [&](const char* name, const char* desc, cli::Runner (*add)(CLI::App&)) {
    CLI::App* s = app.add_subcommand(name, desc);
    runners[s] = add(*s);
  };
  sub("run", "generate text from a prompt", cli::add_run);
  sub("perplexity", "perplexity of a text file (llama.cpp's method)", cli::add_perplexity);
  sub("tokenize", "print the token ids of a text", cli::add_tokenize);
  sub("info", "describe a model file", cli::add_info);
  sub("serve", "OpenAI-compatible HTTP server", cli::add_serve);
  sub("bench", "benchmarks: -m MODEL (pp/tg speed), bandwidth, serve (HTTP load)", cli::add_bench);
  sub("bench-comm", "collective latency and bandwidth between the ranks of mpirun",
      cli::add_bench_comm);
  sub("convert", "convert a Hugging Face model directory to GGUF", cli::add_convert);
  sub("logits", "raw logits of a prompt, as JSON", cli::add_logits);
  sub("embed", "embeddings (or cross-encoder scores) of input lines, as JSON", cli::add_embed);
  // Progress lines (stderr, terminals only) for every subcommand; --no-progress on any.
  bool no_progress = false;
  std::function<void(CLI::App*)> add_no_progress = [&](CLI::App* a) {
    a->add_flag("--no-progress", no_progress, "no progress lines on stderr (shown on terminals)");
    for (CLI::App* s : a->get_subcommands({})) add_no_progress(s);
  };
  for (CLI::App* s : app.get_subcommands({})) add_no_progress(s);
  cli::set_command_line(argc, argv);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  set_progress_enabled(!no_progress);
  // A multi-process run (src/dist/) ends here: MPI_Finalize after a normal end or an
  // error every rank saw together; MPI_Abort, which ends the other ranks too, after an
  // error only this rank saw (they would wait for it in their next collective).
  int rc = 0;
  try {
    for (auto& [s, run] : runners)
      if (s->parsed()) {
        rc = run();
        break;
      }
  } catch (const dist::CollectiveError& e) {
    std::fflush(stdout);
    if (dist::world_rank() == 0) std::fprintf(stderr, "error: %s\n", e.what());
    rc = 1;
  } catch (const Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", e.what());
    if (dist::started()) dist::abort(1);
    rc = 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory\n");
    if (dist::started()) dist::abort(1);
    rc = 1;
  }
  dist::finalize();
  return rc;
}
