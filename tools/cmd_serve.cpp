// tessera serve: the OpenAI-compatible HTTP server over the continuous-batching engine.
//
// Under mpirun with --tensor-parallel-size N, rank 0 is the server (HTTP, tokenization,
// the engine's scheduler and sampling) and ranks 1..N-1 run each step's forward pass with
// it (engine/distributed_step.h); they print nothing, and shutdown signals do not end them:
// rank 0 drains its requests and then tells them to stop.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "cli_common.h"
#include "core/byte_size.h"
#include "core/error.h"
#include "dist/communicator.h"
#include "dist/runtime.h"
#include "dist/step_channel.h"
#include "embed/batcher.h"
#include "engine/distributed_step.h"
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
  ParallelOptions parallel;
  double dist_timeout_s = 60.0;
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

// The KV pool line of the start-up log. n_ranks > 1: each rank holds its share of every
// block, `bytes_per_token` of the largest share.
void print_kv_cache(const Engine& engine, const ServeOptions& o, size_t bytes_per_token,
                    int n_ranks) {
  const EngineMetrics m = engine.metrics();
  const double kv_mib =
      static_cast<double>(m.kv_blocks_total) * m.block_size * bytes_per_token / (1 << 20);
  std::string where;
  if (n_ranks > 1) where = " per rank, " + std::to_string(n_ranks) + " ranks";
  std::fprintf(stderr,
               "KV cache: %d blocks of %d tokens (%lld tokens, %.1f MiB%s); max model len %d; "
               "max %d sequences, %d batched tokens; prefix caching %s\n",
               m.kv_blocks_total, m.block_size,
               static_cast<long long>(m.kv_blocks_total) * m.block_size, kv_mib, where.c_str(),
               engine.max_model_len(), o.engine.max_num_seqs, o.engine.max_num_batched_tokens,
               o.engine.enable_prefix_caching ? "on" : "off");
}

// What a shutdown signal means on rank 0 of a distributed server. mpirun (or its daemon on
// another host: this process's parent) sends SIGTERM to every rank when it ends the job,
// because one rank died or because it was signalled itself, and kills the ranks
// odls_base_sigkill_timeout seconds later (1 by default): too soon to drain a busy server.
// A step that has waited far longer than any step before it points at a rank that died.
void explain_shutdown_signal(const StepPublisher& publisher, int sig, int sender) {
  const char* name = sig == SIGINT ? "SIGINT" : sig == SIGHUP ? "SIGHUP" : "SIGTERM";
  if (sender != 0 && sender == static_cast<int>(getppid()))
    std::fprintf(stderr,
                 "rank 0: %s came from mpirun, which ends every rank when one has died (its "
                 "message names the rank) or when it was signalled itself, and kills them "
                 "after --mca odls_base_sigkill_timeout seconds (1 by default)\n",
                 name);
  const double waited = publisher.in_flight_s(), longest = publisher.longest_step_s();
  if (waited > 2 * longest + 0.05)
    std::fprintf(stderr,
                 "rank 0: a forward step has waited %.2f s for the other ranks, longer than "
                 "any step before it (%.3f s): another rank has most likely died or hangs\n",
                 waited, longest);
}

// A generation server across the ranks of `par`. Every rank's KV pool has the number of
// blocks rank 0 decides: --kv-cache-memory (per rank) divided by the bytes a block takes on
// the rank with the largest share of the KV heads, so no rank exceeds it; by default a
// quarter of the available memory shared by the ranks (they may share a host), which is
// as many blocks as one process holds.
int serve_distributed(ServeOptions& o, Model& model, const ParallelRun& par) {
  dist::Communicator& comm = *par.comm;
  std::unique_ptr<dist::StepChannel> channel = dist::open_step_channel(comm);
  int64_t mine = static_cast<int64_t>(
      KVCache::bytes_per_token(model.n_layer_local(), model.kv_dim_local(), model.kv_cache_type()));
  std::vector<int64_t> shares(static_cast<size_t>(comm.size()));
  comm.gather(&mine, sizeof mine, shares.data(), 0);

  EngineConfig ec = o.engine;
  StepPublisher publisher(*channel, ec.block_size, o.dist_timeout_s);
  std::unique_ptr<Engine> engine;
  load_on_all_ranks(par, [&] {
    if (!par.is_root()) return;
    ec.kv_bytes_per_token = static_cast<size_t>(*std::max_element(shares.begin(), shares.end()));
    if (ec.kv_cache_bytes == 0) ec.kv_cache_fraction /= comm.size();
    ec.step_publisher = &publisher;
    engine = std::make_unique<Engine>(model, ec);
  });
  // The engine thread runs no step before a request arrives, and none can before the
  // server binds: this broadcast is the only collective in flight.
  int32_t n_blocks = par.is_root() ? engine->metrics().kv_blocks_total : 0;
  comm.broadcast(&n_blocks, sizeof n_blocks, 0);
  if (!par.is_root()) {
    std::unique_ptr<KVCache> kv = model.make_kv_cache(n_blocks, ec.block_size);
    run_step_worker(model, *kv, n_blocks, ec.block_size, *channel, o.dist_timeout_s);
    return 0;
  }
  print_kv_cache(*engine, o, ec.kv_bytes_per_token, comm.size());
  ServerOptions so = o.server;
  so.on_shutdown_signal = [&publisher](int sig, int sender) {
    explain_shutdown_signal(publisher, sig, sender);
  };
  int rc = 0;
  {
    HttpServer server(*engine, model, so);
    server.bind();
    rc = server.run();
  }
  engine.reset();  // joins the engine thread: its last step has run on every rank
  publisher.stop();
  return rc;
}

int serve(ServeOptions& o) {
  // Before any thread exists (the engine and MPI start some): shutdown signals go to
  // run() only.
  block_shutdown_signals();
  finish_speculative_options(o.engine.speculative, o.spec_k->count() > 0);
  if (!o.kv_cache_memory.empty())
    o.engine.kv_cache_bytes = parse_byte_size(o.kv_cache_memory, "--kv-cache-memory");
  if (o.server.served_model_name.empty()) o.server.served_model_name = model_stem(o.model);
  if (!o.chat_template_file.empty()) o.server.chat_template = read_file(o.chat_template_file);

  const ParallelRun par = start_parallel(o.parallel, o.model);
  if (par.comm != nullptr && o.engine.speculative.enabled())
    throw dist::CollectiveError("speculative decoding does not run with tensor parallelism yet");
  if (!par.is_root()) {
    // mpirun passes SIGTERM / SIGINT to every rank: a worker waits for rank 0's STOP.
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) signal(sig, SIG_IGN);
  }
  ModelOptions mo = o.load;
  mo.n_threads = o.n_threads;
  par.configure(mo);
  std::unique_ptr<Model> model;
  load_on_all_ranks(par, [&] { model = load_model(o.model, mo); });
  if (const std::optional<EmbedTask> task = embedding_task(*model, o.embed.task)) {
    if (par.comm != nullptr)
      throw dist::CollectiveError(
          "embedding and scoring servers do not run with tensor parallelism");
    if (o.engine.speculative.enabled())
      throw Error("speculative decoding is for text generation, not embedding servers");
    return serve_embeddings(o, *model, *task);
  }
  if (par.comm != nullptr) return serve_distributed(o, *model, par);
  o.engine.speculative.draft_load.n_threads = o.n_threads;
  o.engine.speculative.draft_load.kv_cache_type = mo.kv_cache_type;
  Engine engine(*model, o.engine);
  const ModelConfig& mc = model->config();
  print_kv_cache(engine, o,
                 KVCache::bytes_per_token(mc.n_layer, mc.kv_dim(), model->kv_cache_type()), 1);

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
                 "KV cache size per process, e.g. 2GiB (default: a quarter of the available "
                 "memory, shared by the ranks of a tensor-parallel server)");
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
  add_parallel_options(app, o->parallel);
  app.add_option("--dist-timeout", o->dist_timeout_s,
                 "tensor parallelism: seconds a step may take across the ranks before the job "
                 "ends with an error (a rank died or hangs)")
      ->check(CLI::Range(0.1, 86400.0))
      ->capture_default_str();
  return [o] { return serve(*o); };
}

}  // namespace tessera::cli
