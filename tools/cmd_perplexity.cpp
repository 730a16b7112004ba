// tessera perplexity: llama.cpp-compatible perplexity of a text file. Under mpirun with
// --tensor-parallel-size N every rank scores the same chunks (the logits are the same on
// every rank) and only rank 0 prints, what one process prints.
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "cli_common.h"
#include "core/progress.h"
#include "dist/runtime.h"
#include "engine/perplexity.h"
#include "models/model.h"

namespace tessera::cli {

Runner add_perplexity(CLI::App& app) {
  struct Opts {
    std::string model, file;
    int n_ctx = 512, n_batch = 0, n_threads = 0;
    int max_chunks = 0;  // 0: every whole chunk of the text
    ModelOptions load;
    ParallelOptions parallel;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("-m,--model", o->model, "GGUF model file or Hugging Face model directory")
      ->required();
  add_model_load_options(app, o->load);
  app.add_option("-f,--file", o->file, "text file")->required();
  app.add_option("-c,--ctx-size", o->n_ctx, "tokens per chunk")->check(CLI::Range(4, 1 << 20));
  app.add_option("--chunks", o->max_chunks, "score at most this many chunks (default: all)")
      ->check(CLI::Range(1, 1 << 30));
  app.add_option("-b,--batch-size", o->n_batch, "tokens per forward pass (default: ctx size)")
      ->check(CLI::Range(0, 1 << 20));
  app.add_option("-t,--threads", o->n_threads, "threads (default: all cores)")
      ->check(CLI::Range(0, 1024));
  add_parallel_options(app, o->parallel);
  return [o] {
    const ParallelRun par = start_parallel(o->parallel, o->model);
    if (!par.is_root()) set_progress_enabled(false);
    ModelOptions mo = o->load;
    mo.n_threads = o->n_threads;
    par.configure(mo);
    std::unique_ptr<Model> model;
    std::string text;
    load_on_all_ranks(par, [&] {
      model = load_model(o->model, mo);
      text = read_file(o->file);
    });
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<int32_t> tokens = model->tokenizer().encode(text, true, false);
    const size_t n_tokens = tokens.size();
    if (o->max_chunks > 0 && tokens.size() / o->n_ctx > static_cast<size_t>(o->max_chunks))
      tokens.resize(static_cast<size_t>(o->max_chunks) * o->n_ctx);
    const int n_chunks = static_cast<int>(tokens.size() / o->n_ctx);
    // The same on every rank (the same text and tokenizer), so all fail here or none.
    if (n_chunks < 1 && par.comm != nullptr)
      throw dist::CollectiveError("the text has " + std::to_string(tokens.size()) +
                                  " tokens, fewer than one chunk of " + std::to_string(o->n_ctx));
    if (par.is_root())
      std::fprintf(stderr, "tokenized %zu tokens; %d chunks of %d\n", n_tokens, n_chunks, o->n_ctx);
    Progress progress("perplexity", uint64_t(n_chunks) * o->n_ctx, "tok");
    // The running estimates go to stdout as llama.cpp prints them; when stdout is the
    // terminal the progress line is drawn on, they wait for the end instead.
    const bool defer = progress.active() && isatty(STDOUT_FILENO);
    std::string deferred;
    PerplexityResult r = compute_perplexity(
        *model, tokens, o->n_ctx, o->n_batch > 0 ? o->n_batch : o->n_ctx, [&](int i, double ppl) {
          char buf[64];
          std::snprintf(buf, sizeof buf, "[%d]%.4f,", i + 1, ppl);
          if (defer) {
            deferred += buf;
          } else {
            std::fputs(buf, stdout);
            std::fflush(stdout);
          }
          std::snprintf(buf, sizeof buf, "chunk %d/%d  ppl %.4f", i + 1, n_chunks, ppl);
          progress.set_note(buf);
          progress.add(o->n_ctx);
        });
    progress.finish();
    std::fputs(deferred.c_str(), stdout);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (par.is_root())
      std::fprintf(stderr, "%d chunks, %lld tokens scored, %.2f s; estimate %.4f +/- %.5f\n",
                   r.n_chunks, static_cast<long long>(r.n_scored), secs, r.ppl, r.ppl_stderr);
    std::printf("\nPPL = %.4f\n", r.ppl);
    return 0;
  };
}

}  // namespace tessera::cli
