// tessera serve: the OpenAI-compatible HTTP server over the continuous-batching engine.
#include <cmath>
#include <cstdio>

#include "cli_common.h"
#include "core/byte_size.h"
#include "core/error.h"
#include "embed/batcher.h"
#include "engine/engine.h"
#include "kv/kv_cache.h"
#include "models/model.h"
#include "server/http_server.h"

namespace tessera::cli {

namespace {

struct ServeOptions {
  std::string model;
  std::string kv_cache_memory;
  std::string chat_template_file;
  int n_threads = 0;
  ModelOptions load;
  EngineConfig engine;
  ServerOptions server;
  EmbedOptions embed;
  int max_waiting_inputs = 2048;
  bool batched_tokens_given = false;
  CLI::Option* spec_k = nullptr;
};

// The name /v1/models lists: the file name without ".gguf", or the directory's name for
// a Hugging Face directory or its config.json.
std::string model_stem(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  if (path.size() > 12 && path.compare(path.size() - 12, 12, "/config.json") == 0)
    path.resize(path.size() - 12);
  std::string name = path.substr(path.find_last_of('/') + 1);
  if (name.size() > 5 && name.compare(name.size() - 5, 5, ".gguf") == 0)
    name.resize(name.size() - 5);
  return name;
}

// An embedding or scoring server: no KV cache, no engine; one batcher thread runs the
// encoder (or the decoder's hidden states) over packed batches of inputs.
int serve_embeddings(ServeOptions& o, Model& model, EmbedTask task) {
  o.embed.max_model_len = o.engine.max_model_len;
  if (o.batched_tokens_given) o.embed.max_batch_tokens = o.engine.max_num_batched_tokens;
  const EmbedSettings s = resolve_embed_settings(model, task, o.embed);
  EmbeddingRunner runner(model, s);
  EmbedBatcher batcher(runner, o.max_waiting_inputs);
  if (task == EmbedTask::EMBED)
    std::fprintf(stderr,
                 "embeddings: %d dimensions, %s pooling, %s; inputs of at most %d tokens; "
                 "batches of at most %d tokens / %d inputs\n",
                 runner.dim(), pooling_name(s.pooling),
                 s.normalize ? "normalized" : "not normalized", s.max_len, s.max_batch_tokens,
                 s.max_batch_seqs);
  else
    std::fprintf(stderr,
                 "scores: a cross-encoder of %d label(s), %s; pairs of at most %d tokens; "
                 "batches of at most %d tokens / %d inputs\n",
                 runner.dim(), s.sigmoid ? "sigmoid of the logit" : "raw logits", s.max_len,
                 s.max_batch_tokens, s.max_batch_seqs);
  HttpServer server(batcher, model, o.server);
  server.bind();
  return server.run();
}

int serve(ServeOptions& o) {
  // Before any thread exists (the engine starts one): shutdown signals go to run() only.
  block_shutdown_signals();
  finish_speculative_options(o.engine.speculative, o.spec_k->count() > 0);
  if (!o.kv_cache_memory.empty())
    o.engine.kv_cache_bytes = parse_byte_size(o.kv_cache_memory, "--kv-cache-memory");
  if (o.server.served_model_name.empty()) o.server.served_model_name = model_stem(o.model);
  if (!o.chat_template_file.empty()) o.server.chat_template = read_file(o.chat_template_file);

  ModelOptions mo = o.load;
  mo.n_threads = o.n_threads;
  auto model = load_model(o.model, mo);
  if (const std::optional<EmbedTask> task = embedding_task(*model, o.embed.task)) {
    if (o.engine.speculative.enabled())
      throw Error("speculative decoding is for text generation, not embedding servers");
    return serve_embeddings(o, *model, *task);
  }
  o.engine.speculative.draft_load.n_threads = o.n_threads;
  o.engine.speculative.draft_load.kv_cache_type = mo.kv_cache_type;
  Engine engine(*model, o.engine);

  const EngineMetrics m = engine.metrics();
  const ModelConfig& mc = model->config();
  const double kv_mib = static_cast<double>(m.kv_blocks_total) * m.block_size *
                        KVCache::bytes_per_token(mc.n_layer, mc.kv_dim(), model->kv_cache_type()) /
                        (1 << 20);
  std::fprintf(stderr,
               "KV cache: %d blocks of %d tokens (%lld tokens, %.1f MiB); max model len %d; "
               "max %d sequences, %d batched tokens; prefix caching %s\n",
               m.kv_blocks_total, m.block_size,
               static_cast<long long>(m.kv_blocks_total) * m.block_size, kv_mib,
               engine.max_model_len(), o.engine.max_num_seqs, o.engine.max_num_batched_tokens,
               o.engine.enable_prefix_caching ? "on" : "off");

  HttpServer server(engine, *model, o.server);
  server.bind();
  return server.run();
}

}  // namespace

Runner add_serve(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  app.add_option("-m,--model", o->model, "model: GGUF file or Hugging Face directory")->required();
  app.add_option("--host", o->server.host, "address to listen on");
  app.add_option("--port", o->server.port, "port to listen on")->check(CLI::Range(1, 65535));
  app.add_option("--api-key", o->server.api_key, "require 'Authorization: Bearer KEY'");
  app.add_option("--chat-template", o->chat_template_file,
                 "Jinja chat template file to use instead of the model's own");
  app.add_option("--tool-call-parser", o->server.parsers.tool_call_parser,
                 "how tool calls are read from the output: auto (from the chat template), "
                 "hermes, llama3_json, mistral, generic")
      ->check(CLI::IsMember({"auto", "hermes", "llama3_json", "mistral", "generic"}));
  app.add_option("--reasoning-parser", o->server.parsers.reasoning_parser,
                 "how <think> reasoning is separated into reasoning_content: auto (from the "
                 "chat template), deepseek_r1, qwen3, none")
      ->check(CLI::IsMember({"auto", "deepseek_r1", "qwen3", "none"}));
  app.add_option("--served-model-name", o->server.served_model_name,
                 "model name clients use (default: the file name without .gguf)");
  app.add_flag(
      "--no-webui", [o](int64_t) { o->server.webui = false; },
      "do not serve the chat page at / (then 404)");
  add_model_load_options(app, o->load);
  app.add_option("-t,--threads", o->n_threads, "compute threads (default: all cores)")
      ->check(CLI::Range(0, 1024));
  app.add_option("--max-num-seqs", o->engine.max_num_seqs, "sequences per engine step")
      ->check(CLI::Range(1, 4096));
  app.add_option("--max-num-batched-tokens", o->engine.max_num_batched_tokens,
                 "tokens per engine step (embedding servers: per forward pass, default "
                 "max(2048, max model len))")
      ->check(CLI::Range(1, 1 << 20))
      ->each([o](const std::string&) { o->batched_tokens_given = true; });
  app.add_option("--kv-cache-memory", o->kv_cache_memory,
                 "KV cache size, e.g. 2GiB (default: a quarter of the available memory)");
  app.add_option("--max-model-len", o->engine.max_model_len,
                 "prompt + completion limit (default: the model's context, at most 8192)")
      ->check(CLI::Range(0, 1 << 24));
  app.add_flag(
      "--no-prefix-caching", [o](int64_t) { o->engine.enable_prefix_caching = false; },
      "do not reuse KV blocks of identical prompt prefixes");
  app.add_option("--max-waiting", o->engine.max_waiting,
                 "queued requests beyond which new ones get 429")
      ->check(CLI::Range(0, 1 << 20));
  app.add_option("--max-waiting-inputs", o->max_waiting_inputs,
                 "embedding / scoring servers: inputs queued at once, over all requests (more "
                 "get 429); also the most one request may send (more get 400)")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  add_embed_options(app, o->embed, /*serve=*/true);
  o->spec_k = add_speculative_options(app, o->engine.speculative);
  HttpLimits& http = o->server.http;
  app.add_option("--max-body-bytes", http.max_body_bytes,
                 "largest request body, chunked or not (413 above)")
      ->check(CLI::Range(size_t{1}, size_t{1} << 34))
      ->capture_default_str();
  app.add_option("--max-header-bytes", http.max_header_bytes,
                 "largest request line + header section (431 above)")
      ->check(CLI::Range(size_t{1024}, size_t{16} << 20))
      ->capture_default_str();
  app.add_option("--header-timeout", http.header_timeout_s,
                 "seconds a request's head may take to arrive (408 after)")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  app.add_option("--body-timeout", http.body_timeout_s,
                 "seconds a request's body may take to arrive after its head (408 after)")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  app.add_option("--keep-alive-timeout", http.keep_alive_timeout_s,
                 "seconds an idle keep-alive connection stays open")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  app.add_option("--max-connections", http.max_connections,
                 "open client connections in all (more are answered 503 and closed)")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  app.add_option("--max-connections-per-client", http.max_connections_per_client,
                 "open connections from one client address (more are answered 503 and closed)")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  app.add_option("--shutdown-timeout", o->server.shutdown_timeout_s,
                 "seconds running requests get to finish after SIGTERM/SIGINT/SIGHUP")
      ->check(CLI::Range(0.0, 86400.0));
  return [o] { return serve(*o); };
}

}  // namespace tessera::cli
