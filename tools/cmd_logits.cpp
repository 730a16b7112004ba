// tessera logits: the model's raw logits for a prompt given as token ids (or text), one
// row per position, as JSON — for comparing with reference implementations.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "core/error.h"
#include "engine/sequence_runner.h"
#include "models/model.h"

namespace tessera::cli {

Runner add_logits(CLI::App& app) {
  struct Opts {
    std::string model, prompt, backend = "cpu", kv_cache_type = "f16";
    std::vector<int32_t> ids;
    bool last = false, repack = true;
    int n_batch = 512, n_threads = 0;
    ParallelOptions parallel;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("-m,--model", o->model, "GGUF model file")->required();
  auto* i = app.add_option("--ids", o->ids, "prompt token ids (space or comma separated)")
                ->delimiter(',');
  auto* p = app.add_option("-p,--prompt", o->prompt, "prompt text (tokenized with BOS)");
  i->excludes(p);
  app.add_flag("--last", o->last, "only the last position's logits");
  app.add_option("-b,--batch-size", o->n_batch, "tokens per forward pass")
      ->check(CLI::Range(1, 1 << 16));
  app.add_option("-t,--threads", o->n_threads, "threads (default: all cores)")
      ->check(CLI::Range(0, 1024));
  app.add_flag("!--no-repack", o->repack,
               "keep Q4_0/Q8_0 matrices in the file's row layout (the logits are the same)");
  app.add_option("--backend", o->backend, "cpu or ref (the scalar references)")
      ->check(CLI::IsMember({"cpu", "ref"}));
  app.add_option("--kv-cache-dtype", o->kv_cache_type,
                 "KV cache storage: f16 (default, as llama.cpp) or f32 (exact attention)")
      ->check(CLI::IsMember({"f16", "f32"}));
  add_parallel_options(app, o->parallel);
  return [o, p] {
    // Under tensor or pipeline parallelism every rank evaluates; rank 0 alone prints.
    const ParallelRun par = start_parallel(o->parallel, o->model);
    ModelOptions mo;
    par.configure(mo);
    mo.n_threads = o->n_threads;
    mo.repack = o->repack;
    mo.backend = o->backend;
    mo.kv_cache_type = o->kv_cache_type;
    std::unique_ptr<Model> model;
    load_on_all_ranks(par, [&] { model = load_model(o->model, mo); });
    std::vector<int32_t> tokens =
        p->count() ? model->tokenizer().encode(o->prompt, true, true) : o->ids;
    if (tokens.empty()) throw Error("give a prompt with --ids or -p");
    const int n = static_cast<int>(tokens.size());
    const int n_vocab = model->config().n_vocab;
    std::vector<int32_t> want;
    for (int k = o->last ? n - 1 : 0; k < n; ++k) want.push_back(k);
    std::vector<float> logits(want.size() * size_t(n_vocab));
    SequenceRunner runner(*model, n + 1);
    runner.eval(tokens, want, logits.data(), o->n_batch);
    nlohmann::json j;
    j["tokens"] = tokens;
    j["positions"] = want;
    nlohmann::json rows = nlohmann::json::array();
    for (size_t r = 0; r < want.size(); ++r)
      rows.push_back(
          std::vector<float>(logits.begin() + r * n_vocab, logits.begin() + (r + 1) * n_vocab));
    j["logits"] = rows;
    std::puts(j.dump().c_str());
    return 0;
  };
}

}  // namespace tessera::cli
