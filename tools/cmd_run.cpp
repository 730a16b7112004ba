// tessera run: prompt in, prompt + continuation out.
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "core/error.h"
#include "engine/engine.h"
#include "engine/sequence_runner.h"
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
  SpeculativeConfig spec;
  CLI::Option* spec_k = nullptr;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Prints the report both generation paths share: text streamed as it comes (or one JSON
// object at the end), speeds on stderr.
struct Output {
  const RunOptions& o;
  const Tokenizer& tok;
  std::string text, pending;  // pending: bytes not yet printed (incomplete UTF-8)
  void emit(const std::string& s) const {
    if (o.json) return;
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fflush(stdout);
  }
  void add(int32_t t) {
    pending += tok.token_to_piece(t);
    const size_t k = utf8_complete_prefix(pending);
    emit(pending.substr(0, k));
    text += pending.substr(0, k);
    pending.erase(0, k);
  }
};

// Generation through the continuous-batching engine with speculative decoding: one
// request, the same output as the plain path for greedy decoding.
int run_speculative(const RunOptions& o, Model& model, const std::string& prompt,
                    const std::vector<int32_t>& tokens, const SamplingParams& sp, int n_ctx) {
  const ModelConfig& mc = model.config();
  EngineConfig ec;
  ec.max_num_seqs = 1;
  ec.max_num_batched_tokens = o.n_batch;
  ec.max_model_len = n_ctx;
  ec.kv_cache_bytes = static_cast<int64_t>(
      KVCache::bytes_per_token(mc.n_layer, mc.kv_dim(), model.kv_cache_type()) *
      static_cast<size_t>(n_ctx + 2 * ec.block_size));
  ec.enable_prefix_caching = false;
  ec.speculative = o.spec;
  ec.speculative.draft_load.n_threads = o.n_threads;
  ec.speculative.draft_load.kv_cache_type = o.load.kv_cache_type;
  Engine engine(model, ec);
  GenerateParams gp;
  gp.sampling = sp;
  gp.ignore_eos = o.ignore_eos;
  gp.max_tokens = std::min(o.n_predict, n_ctx - static_cast<int>(tokens.size()));

  Output out{o, model.tokenizer(), {}, {}};
  out.emit(prompt);
  std::vector<int32_t> generated;
  const auto t0 = std::chrono::steady_clock::now();
  auto stream = engine.submit(tokens, gp);
  double t_prompt = 0.0;
  std::chrono::steady_clock::time_point t1;
  for (bool done = false; !done;) {
    RequestUpdate u;
    if (!stream->next(u, std::chrono::milliseconds(100))) continue;
    if (!u.tokens.empty() && generated.empty()) {
      t_prompt = seconds_since(t0);
      t1 = std::chrono::steady_clock::now();
    }
    for (const GeneratedToken& g : u.tokens) {
      generated.push_back(g.token);
      out.add(g.token);
    }
    done = u.finish != FinishReason::NONE;
  }
  // The first token comes with the prompt; generation speed counts the rest.
  const double t_gen = generated.empty() ? 0.0 : seconds_since(t1);
  const int n_gen = static_cast<int>(generated.size());
  out.emit(out.pending + "\n");
  out.text += out.pending;
  const EngineMetrics m = engine.metrics();
  const double gen_tps = n_gen > 1 && t_gen > 0 ? (n_gen - 1) / t_gen : 0.0;
  if (o.json) {
    nlohmann::json j;
    j["prompt"] = prompt;
    j["prompt_tokens"] = tokens;
    j["tokens"] = generated;
    j["text"] = out.text;
    j["prompt_tokens_per_second"] = t_prompt > 0 ? tokens.size() / t_prompt : 0.0;
    j["generation_tokens_per_second"] = gen_tps;
    j["speculative"] = {{"method", o.spec.method},
                        {"proposed", m.spec_proposed},
                        {"accepted", m.spec_accepted},
                        {"rounds", m.spec_rounds}};
    std::puts(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  }
  std::fprintf(stderr,
               "prompt: %zu tokens in %.3f s (%.2f tokens/s) | generation: %d tokens in %.3f s "
               "(%.2f tokens/s)\n",
               tokens.size(), t_prompt, t_prompt > 0 ? tokens.size() / t_prompt : 0.0, n_gen, t_gen,
               gen_tps);
  std::fprintf(stderr,
               "speculative (%s): %lld proposed, %lld accepted (%.1f%%), mean accepted length "
               "%.2f\n",
               o.spec.method.c_str(), static_cast<long long>(m.spec_proposed),
               static_cast<long long>(m.spec_accepted),
               m.spec_proposed > 0 ? 100.0 * m.spec_accepted / m.spec_proposed : 0.0,
               m.spec_rounds > 0 ? static_cast<double>(m.spec_emitted) / m.spec_rounds : 0.0);
  return 0;
}

int run(RunOptions& o) {
  finish_speculative_options(o.spec, o.spec_k->count() > 0);
  ModelOptions mo = o.load;
  mo.n_threads = o.n_threads;
  auto model = load_model(o.model, mo);
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

  SamplingParams sp = o.sp;
  if (o.seed >= 0) {
    sp.seed = static_cast<uint64_t>(o.seed);
    sp.has_seed = true;
  }
  if (o.spec.enabled() && o.n_predict > 0)
    return run_speculative(o, *model, prompt, tokens, sp, n_ctx);
  Sampler sampler(sp, cfg.n_vocab);
  SequenceRunner runner(*model, n_ctx);
  std::vector<float> logits(cfg.n_vocab);

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

  const auto t0 = std::chrono::steady_clock::now();
  runner.eval(tokens, {static_cast<int32_t>(tokens.size()) - 1}, logits.data(), o.n_batch);
  const double t_prompt = seconds_since(t0);
  const size_t n_prompt = tokens.size();

  std::string pending;  // bytes not yet printed (an incomplete UTF-8 sequence)
  int n_gen = 0;
  const auto t1 = std::chrono::steady_clock::now();
  while (n_gen < o.n_predict && runner.n_past() < n_ctx) {
    const int32_t next = sampler.sample(logits.data(), tokens);
    if (!o.ignore_eos && tok.is_eog(next)) break;
    tokens.push_back(next);
    ++n_gen;
    pending += tok.token_to_piece(next);
    const size_t k = utf8_complete_prefix(pending);
    emit(pending.substr(0, k));
    text += pending.substr(0, k);
    pending.erase(0, k);
    if (n_gen == o.n_predict || runner.n_past() >= n_ctx) break;
    runner.eval({next}, {0}, logits.data(), 1);
  }
  emit(pending + "\n");
  text += pending;
  const double t_gen = seconds_since(t1);
  if (o.json) {
    nlohmann::json j;
    j["prompt"] = prompt;
    j["prompt_tokens"] = prompt_tokens;
    j["tokens"] = std::vector<int32_t>(tokens.begin() + prompt_tokens.size(), tokens.end());
    j["text"] = text;
    j["prompt_tokens_per_second"] = n_prompt / t_prompt;
    j["generation_tokens_per_second"] = n_gen > 0 ? n_gen / t_gen : 0.0;
    std::puts(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  }
  std::fprintf(stderr,
               "prompt: %zu tokens in %.3f s (%.2f tokens/s) | generation: %d tokens in %.3f s "
               "(%.2f tokens/s)\n",
               n_prompt, t_prompt, n_prompt / t_prompt, n_gen, t_gen,
               n_gen > 0 ? n_gen / t_gen : 0.0);
  return 0;
}

}  // namespace

Runner add_run(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  app.add_option("-m,--model", o->model, "GGUF model file or Hugging Face model directory")
      ->required();
  add_model_load_options(app, o->load);
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
