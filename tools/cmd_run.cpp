// tessera run: prompt in, prompt + continuation out.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "core/error.h"
#include "dist/runtime.h"
#include "dist/timed_communicator.h"
#include "engine/engine.h"
#include "models/model.h"
#include "sampling/sampler.h"
#include "tokenizer/utf8.h"

namespace tessera::cli {

namespace {

struct RunOptions {
  std::string model, prompt, prompt_file;
  bool has_prompt = false;
  int n_predict = 128;
  int n_ctx = 0;
  int n_batch = 512;
  int n_threads = 0;
  bool ignore_eos = false;
  bool json = false;
  SamplingParams sp;
  int64_t seed = -1;
  ModelOptions load;
  ParallelOptions parallel;
  SpeculativeConfig spec;
  CLI::Option* spec_k = nullptr;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int run(RunOptions& o) {
  finish_speculative_options(o.spec, o.spec_k->count() > 0);
  // Under tensor or pipeline parallelism every rank runs this whole function (see
  // parallel_options.cpp).
  const ParallelRun par = start_parallel(o.parallel, o.model);
  if (par.comm != nullptr && o.spec.enabled())
    throw dist::CollectiveError("speculative decoding does not run across processes yet");
  ModelOptions mo = o.load;
  mo.n_threads = o.n_threads;
  par.configure(mo);
  // Across processes the model's collectives (and a pipeline's messages) go through a
  // timer: communication's share is reported.
  std::unique_ptr<dist::TimedCommunicator> timed;
  if (par.comm != nullptr) timed = std::make_unique<dist::TimedCommunicator>(*par.comm);
  mo.comm = timed.get();
  std::unique_ptr<Model> model;
  load_on_all_ranks(par, [&] { model = load_model(o.model, mo); });
  if (timed) timed->reset();  // the run's collectives only, not the load's
  const Tokenizer& tok = model->tokenizer();
  const ModelConfig& cfg = model->config();

  std::string prompt = o.prompt;
  if (!o.prompt_file.empty()) prompt = read_file(o.prompt_file);
  std::vector<int32_t> tokens;
  if (o.has_prompt || !o.prompt_file.empty()) {
    tokens = tok.encode(prompt, /*add_special=*/true, /*parse_special=*/true);
  }
  if (tokens.empty()) {
    if (tok.bos_id() < 0) throw Error("no prompt given and the vocabulary has no BOS token");
    tokens.push_back(tok.bos_id());
  }
  const int n_ctx = o.n_ctx > 0 ? o.n_ctx : 4096;
  if (static_cast<int>(tokens.size()) >= n_ctx)
    throw Error("the prompt has " + std::to_string(tokens.size()) +
                " tokens, which does not fit the context of " + std::to_string(n_ctx));

  const int n_prompt = static_cast<int>(tokens.size());
  GenerateParams gp;
  gp.sampling = o.sp;
  if (o.seed >= 0) {
    gp.sampling.seed = static_cast<uint64_t>(o.seed);
    gp.sampling.has_seed = true;
  } else if (par.comm != nullptr) {  // the ranks must sample alike
    gp.sampling.seed = par.shared_seed();
    gp.sampling.has_seed = true;
  }
  gp.ignore_eos = o.ignore_eos;
  // The context holds the prompt and what is generated (the last token is never computed).
  gp.max_tokens = std::min(o.n_predict, n_ctx - n_prompt);

  // Text mode streams the prompt and then each piece as soon as it is complete UTF-8;
  // JSON mode prints one object at the end.
  auto emit = [&](const std::string& s) {
    if (o.json) return;
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fflush(stdout);
  };
  emit(prompt);
  const std::vector<int32_t> prompt_tokens = tokens;
  std::string text;
  std::string pending;  // bytes not yet printed (an incomplete UTF-8 sequence)
  int n_gen = 0;
  double t_prompt = 0.0, t_gen = 0.0;
  EngineMetrics m;
  dist::CommStats comm_prompt, comm_gen;  // the model's collectives in each phase (ranks > 1)

  if (gp.max_tokens > 0) {
    // Generation goes through the engine, one sequence at a time: the same runner, sampler
    // and end-of-generation rule as serving. Its KV pool holds exactly the context.
    EngineConfig ec;
    ec.max_num_seqs = 1;
    ec.max_num_batched_tokens = o.n_batch;
    ec.max_model_len = n_ctx;
    ec.enable_prefix_caching = false;
    ec.speculative = o.spec;
    ec.speculative.draft_load.n_threads = o.n_threads;
    ec.speculative.draft_load.kv_cache_type = o.load.kv_cache_type;
    const int64_t n_blocks = (n_ctx + ec.block_size - 1) / ec.block_size;
    ec.kv_cache_bytes = n_blocks * ec.block_size *
                        static_cast<int64_t>(KVCache::bytes_per_token(cfg.n_layer, cfg.kv_dim(),
                                                                      model->kv_cache_type()));
    Engine engine(*model, ec);
    const auto t0 = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point t1 = t0;
    std::shared_ptr<RequestStream> stream = engine.submit(tokens, gp);
    RequestUpdate u;
    while (!is_finished(u.finish)) {
      u.tokens.clear();
      if (!stream->next(u, std::chrono::milliseconds(100))) continue;
      for (const GeneratedToken& g : u.tokens) {
        // The prompt's time ends with the first token (its pass and its sampling).
        if (n_gen == 0) {
          t_prompt = seconds_since(t0);
          if (timed) comm_prompt = timed->snapshot();
          t1 = std::chrono::steady_clock::now();
        }
        tokens.push_back(g.token);
        ++n_gen;
        pending += tok.token_to_piece(g.token);
        const size_t k = utf8_complete_prefix(pending);
        emit(pending.substr(0, k));
        text += pending.substr(0, k);
        pending.erase(0, k);
      }
    }
    if (n_gen == 0) t_prompt = seconds_since(t0);
    t_gen = seconds_since(t1);
    if (timed) comm_gen = timed->snapshot().since(comm_prompt);
    m = engine.metrics();
  }
  emit(pending + "\n");
  text += pending;
  auto rate = [](double n, double t) { return t > 0 ? n / t : 0.0; };
  if (!par.is_root()) return 0;  // rank 0 reports
  if (o.json) {
    nlohmann::json j;
    j["prompt"] = prompt;
    j["prompt_tokens"] = prompt_tokens;
    j["tokens"] = std::vector<int32_t>(tokens.begin() + prompt_tokens.size(), tokens.end());
    j["text"] = text;
    j["prompt_tokens_per_second"] = rate(n_prompt, t_prompt);
    j["generation_tokens_per_second"] = rate(n_gen, t_gen);
    if (timed)
      j["communication"] = {{"prompt_seconds", comm_prompt.total().seconds},
                            {"prompt_calls", comm_prompt.total().calls},
                            {"prompt_bytes", comm_prompt.total().bytes},
                            {"generation_seconds", comm_gen.total().seconds},
                            {"generation_calls", comm_gen.total().calls},
                            {"generation_bytes", comm_gen.total().bytes}};
    if (o.spec.enabled())
      j["speculative"] = {{"method", o.spec.method},
                          {"proposed", m.spec_proposed},
                          {"accepted", m.spec_accepted},
                          {"verifications", m.spec_rounds}};
    std::puts(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  }
  std::fprintf(stderr,
               "prompt: %d tokens in %.3f s (%.2f tokens/s) | generation: %d tokens in %.3f s "
               "(%.2f tokens/s)\n",
               n_prompt, t_prompt, rate(n_prompt, t_prompt), n_gen, t_gen, rate(n_gen, t_gen));
  if (timed) {
    const dist::CollectiveStats p = comm_prompt.total(), g = comm_gen.total();
    std::fprintf(stderr,
                 "communication (rank 0): prompt %.3f s in %lld calls, %.1f MB (%.1f%%) | "
                 "generation %.3f s in %lld calls, %.1f MB (%.1f%%)\n",
                 p.seconds, static_cast<long long>(p.calls), p.bytes / 1e6,
                 t_prompt > 0 ? 100.0 * p.seconds / t_prompt : 0.0, g.seconds,
                 static_cast<long long>(g.calls), g.bytes / 1e6,
                 t_gen > 0 ? 100.0 * g.seconds / t_gen : 0.0);
  }
  if (o.spec.enabled())
    std::fprintf(stderr,
                 "speculative (%s): %lld proposed, %lld accepted (%.1f%%), mean accepted "
                 "length %.2f\n",
                 o.spec.method.c_str(), static_cast<long long>(m.spec_proposed),
                 static_cast<long long>(m.spec_accepted),
                 m.spec_proposed > 0 ? 100.0 * m.spec_accepted / m.spec_proposed : 0.0,
                 m.spec_rounds > 0 ? static_cast<double>(m.spec_emitted) / m.spec_rounds : 0.0);
  return 0;
}

}  // namespace

Runner add_run(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  app.add_option("-m,--model", o->model, "GGUF model file or Hugging Face model directory")
      ->required();
  add_model_load_options(app, o->load);
  add_parallel_options(app, o->parallel);
  o->spec_k = add_speculative_options(app, o->spec);
  auto* p = app.add_option("-p,--prompt", o->prompt, "prompt (default: start from BOS alone)");
  app.add_option("-f,--file", o->prompt_file, "read the prompt from a file");
  app.add_option("-n,--n-predict", o->n_predict, "tokens to generate")
      ->check(CLI::Range(0, 1 << 24));
  app.add_option("-c,--ctx-size", o->n_ctx, "context size (default 4096, as llama.cpp)")
      ->check(CLI::Range(0, 1 << 24));
  app.add_option("-b,--batch-size", o->n_batch, "prompt tokens per forward pass")
      ->check(CLI::Range(1, 1 << 16));
  app.add_option("-t,--threads", o->n_threads, "threads (default: all cores)")
      ->check(CLI::Range(0, 1024));
  app.add_option("--temp", o->sp.temperature, "temperature (0: greedy)")
      ->check(CLI::Range(0.0, 100.0));
  app.add_option("--top-k", o->sp.top_k, "top-k (0: off)")->check(CLI::Range(0, 1 << 24));
  app.add_option("--top-p", o->sp.top_p, "top-p (1: off)")->check(CLI::Range(0.0, 1.0));
  app.add_option("--min-p", o->sp.min_p, "min-p (0: off)")->check(CLI::Range(0.0, 1.0));
  app.add_option("--repeat-penalty", o->sp.repetition_penalty, "repetition penalty (1: off)")
      ->check(CLI::Range(0.0, 100.0));
  app.add_option("--repeat-last-n", o->sp.penalty_last_n, "tokens the penalties look at (-1: all)")
      ->check(CLI::Range(-1, 1 << 24));
  app.add_option("--presence-penalty", o->sp.presence_penalty, "presence penalty")
      ->check(CLI::Range(-2.0, 2.0));
  app.add_option("--frequency-penalty", o->sp.frequency_penalty, "frequency penalty")
      ->check(CLI::Range(-2.0, 2.0));
  app.add_option("--seed", o->seed, "RNG seed (default: random)")
      ->check(CLI::Range(int64_t{-1}, INT64_MAX));
  app.add_flag("--ignore-eos", o->ignore_eos, "keep generating past end-of-generation tokens");
  app.add_flag(
      "--json", o->json,
      "print one JSON object (prompt and generated token ids, text, speed) instead of text");
  return [o, p] {
    o->has_prompt = p->count() > 0;
    return run(*o);
  };
}

}  // namespace tessera::cli
