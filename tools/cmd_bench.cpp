// tessera bench: benchmarks.
//   bench -m MODEL     prompt-processing / generation speed in this process (llama-bench
//                      style), with the memory bandwidth and the decode roofline; under
//                      mpirun with --tensor-parallel-size N every rank runs the same tests
//                      on its shard and rank 0 alone prints its own timings
//   bench bandwidth    the memory-bandwidth probe alone
//   bench serve        loads an OpenAI-compatible server over HTTP and reports throughput
//                      and TTFT / TPOT / ITL / end-to-end latency
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>

#include "bench/latency_bench.h"
#include "bench/serve_bench.h"
#include "bench/spec_metrics.h"
#include "cli_common.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/thread_pool.h"
#include "dist/runtime.h"
#include "loader/gguf.h"
#include "models/model.h"
#include "models/weight_quant.h"

namespace tessera::cli {

namespace {

double parse_rate(const std::string& s) {
  if (s == "inf" || s == "INF" || s == "Inf") return std::numeric_limits<double>::infinity();
  size_t used = 0;
  double r = 0;
  try {
    r = std::stod(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != s.size() || !(r > 0))
    throw Error("--request-rate must be a positive number or 'inf', not '" + s + "'");
  return r;
}

Runner add_bench_serve(CLI::App& app) {
  struct Opts {
    bench::ServeBenchConfig cfg;
    std::string rate = "inf", json_path, extra_body;
  };
  auto o = std::make_shared<Opts>();
  bench::ServeBenchConfig& c = o->cfg;
  app.add_option("--host", c.host, "server address")->capture_default_str();
  app.add_option("--port", c.port, "server port")->capture_default_str();
  app.add_option("--api-key", c.api_key, "sent as 'Authorization: Bearer KEY'");
  app.add_option("--model", c.model, "model name to send (default: the first of /v1/models)");
  app.add_option("--endpoint", c.endpoint, "/v1/completions or /v1/chat/completions")
      ->capture_default_str();
  app.add_option("-n,--num-prompts", c.num_prompts, "number of requests")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-concurrency", c.max_concurrency,
                 "requests in flight at most (default: unbounded)")
      ->check(CLI::PositiveNumber);
  app.add_option("--request-rate", o->rate,
                 "Poisson arrival rate in requests/s; 'inf' sends all at once")
      ->capture_default_str();
  app.add_option("--burstiness", c.burstiness,
                 "gamma shape of the arrival gaps (1 = Poisson, <1 burstier)")
      ->capture_default_str();
  app.add_option("--input-len", c.input_len, "tokens per synthetic prompt")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--output-len", c.output_len, "tokens to generate per request")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--prompt-file", c.prompt_file,
                 "text prompts, one per line (used round-robin instead of synthetic ones)");
  app.add_flag("--text-prompt", c.text_prompts,
               "synthetic prompts as random words instead of token ids (always so for chat)");
  app.add_option("--token-id-min", c.token_id_min, "smallest random token id")
      ->capture_default_str();
  app.add_option("--token-id-max", c.token_id_max,
                 "random token ids stay below this (at most the model's vocabulary size)")
      ->capture_default_str();
  app.add_option("--seed", c.seed, "seed of the prompts and arrival times")->capture_default_str();
  app.add_flag("--ignore-eos,!--no-ignore-eos", c.ignore_eos,
               "generate exactly --output-len tokens (sends ignore_eos; default on)");
  app.add_flag("!--no-min-tokens", c.send_min_tokens,
               "with --ignore-eos, do not also send min_tokens");
  app.add_option("--temperature", c.temperature, "sampling temperature")->capture_default_str();
  app.add_option("--timeout", c.timeout_s, "seconds per request before it counts as failed")
      ->capture_default_str();
  app.add_option("--json", o->json_path, "also write every figure to this JSON file");
  app.add_option("--extra-body", o->extra_body,
                 "a JSON object merged into every request body (e.g. '{\"response_format\": "
                 "...}')");
  app.add_flag("-q,--quiet", c.quiet, "no progress on stderr");
  return [o] {
    o->cfg.request_rate = parse_rate(o->rate);
    if (!o->extra_body.empty()) {
      auto j = nlohmann::json::parse(o->extra_body, nullptr, false);
      if (j.is_discarded() || !j.is_object()) throw Error("--extra-body must be a JSON object");
      o->cfg.extra_body = std::move(j);
    }
    if (o->cfg.quiet) set_progress_enabled(false);
    const bench::SpecCounters before =
        bench::scrape_spec_counters(o->cfg.host, o->cfg.port, o->cfg.api_key);
    bench::ServeBenchResult r = bench::run_serve_bench(o->cfg);
    // Speculative decoding counters of a Tessera server, over this run.
    const nlohmann::json spec = bench::spec_delta_json(
        before, bench::scrape_spec_counters(o->cfg.host, o->cfg.port, o->cfg.api_key));
    if (!spec.is_null()) r.json["speculative"] = spec;
    std::fputs(bench::format_report(r.summary).c_str(), stdout);
    std::fputs(bench::format_spec_report(spec).c_str(), stdout);
    std::fflush(stdout);
    if (!o->json_path.empty()) {
      std::ofstream f(o->json_path);
      f << r.json.dump(2) << "\n";
      if (!f) throw Error("cannot write '" + o->json_path + "'");
    }
    if (r.summary.completed == 0)
      throw Error("all " + std::to_string(r.summary.num_requests) + " requests failed");
    return 0;
  };
}

void print_bandwidth(const bench::BandwidthResult& b) {
  std::printf(
      "memory bandwidth (triad, %d threads, 3 x %.0f MiB arrays, LLC %.0f MiB): "
      "%.2f GB/s best, %.2f ± %.2f GB/s mean\n",
      b.n_threads, b.n_elements * 8.0 / (1 << 20), b.llc_bytes / double(1 << 20), b.best_gbs,
      b.gbs.mean, b.gbs.stddev);
}

Runner add_bench_bandwidth(CLI::App& app) {
  struct Opts {
    bench::BandwidthConfig cfg;
    double size_mib = 0;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  o->cfg.n_threads = ThreadPool::default_threads();
  app.add_option("-t,--threads", o->cfg.n_threads, "threads")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--size-mib", o->size_mib,
                 "MiB per array (default: 128, or 4x the last-level cache if larger)")
      ->check(CLI::PositiveNumber);
  app.add_option("--iterations", o->cfg.iterations, "timed triad passes")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_flag("--json", o->json, "print JSON instead of text");
  return [o] {
    if (o->size_mib > 0) o->cfg.n_elements = static_cast<int64_t>(o->size_mib * (1 << 20) / 8);
    const bench::BandwidthResult b = bench::measure_bandwidth(o->cfg);
    if (o->json)
      std::printf("%s\n", bench::bandwidth_json(b).dump(2).c_str());
    else
      print_bandwidth(b);
    return 0;
  };
}

// The type holding most of the weight-matrix bytes, upper case as llama-bench prints it.
std::string main_weight_type(const Model& m, const std::string& quantization) {
  std::string name = quantization;
  if (name.empty()) {
    std::map<std::string, uint64_t> by_type;
    for (const gguf::TensorInfo& t : m.file().tensors())
      if (t.n_dims >= 2) by_type[dtype_name(plain_type(t.type))] += t.n_bytes;
    uint64_t best = 0;
    for (const auto& [n, b] : by_type)
      if (b > best) best = b, name = n;
  }
  std::transform(name.begin(), name.end(), name.begin(), ::toupper);
  return name;
}

Runner add_bench_latency(CLI::App& app) {
  struct Opts {
    std::string model;
    ModelOptions mo;
    ParallelOptions parallel;
    bench::LatencyConfig cfg;
    int n_threads = ThreadPool::default_threads();
    bool json = false, quiet = false, no_bandwidth = false;
    double bandwidth_gbs = 0;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("-m,--model", o->model, "model: GGUF file, HF directory or config.json");
  app.add_option("-p,--n-prompt", o->cfg.n_prompt,
                 "prompt lengths of the pp tests (comma-separated; 0: none)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("-n,--n-gen", o->cfg.n_gen,
                 "generated tokens of the tg tests (comma-separated; 0: none)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("-r,--repetitions", o->cfg.repetitions, "timed repetitions of each test")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("-t,--threads", o->n_threads, "threads")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_flag("--json", o->json, "print JSON instead of the table");
  app.add_flag("--no-bandwidth", o->no_bandwidth, "skip the bandwidth probe (and so the roofline)");
  app.add_option("--bandwidth-gbs", o->bandwidth_gbs,
                 "use this memory bandwidth (GB/s) for the roofline instead of measuring it")
      ->check(CLI::PositiveNumber);
  app.add_option("--seed", o->cfg.seed, "seed of the random prompt tokens")->capture_default_str();
  app.add_flag("-q,--quiet", o->quiet, "no progress on stderr");
  add_model_load_options(app, o->mo);
  add_parallel_options(app, o->parallel);
  return [o] {
    if (o->model.empty())
      throw Error("bench: -m MODEL is required (or a subcommand: serve, bandwidth)");
    for (int v : o->cfg.n_prompt)
      if (v < 0) throw Error("-p must not be negative");
    for (int v : o->cfg.n_gen)
      if (v < 0) throw Error("-n must not be negative");
    const ParallelRun par = start_parallel(o->parallel, o->model);
    if (!par.is_root()) o->quiet = true;  // the ranks run alike; rank 0 reports
    if (o->quiet) set_progress_enabled(false);
    bench::LatencyReport r;
    r.model_path = o->model;
    r.n_threads = o->n_threads;
    o->mo.n_threads = o->n_threads;
    par.configure(o->mo);
    const auto t0 = std::chrono::steady_clock::now();
    std::unique_ptr<Model> model;
    load_on_all_ranks(par, [&] { model = load_model(o->model, o->mo); });
    r.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const ModelConfig& c = model->config();
    r.arch = c.arch;
    r.model_name = c.name.empty() ? std::filesystem::path(o->model).stem().string() : c.name;
    r.n_params = model->weight_stats().n_params;
    r.n_bytes = model->weight_stats().n_bytes;
    r.decode_bytes = model->weight_stats().decode_bytes;
    r.weight_type = main_weight_type(*model, o->mo.quantization);
    if (!o->quiet)
      std::fprintf(stderr, "loaded %s in %.2f s (%d threads)\n", o->model.c_str(), r.load_seconds,
                   r.n_threads);
    r.tests = bench::run_latency_tests(*model, o->cfg, o->quiet);
    if (o->bandwidth_gbs > 0) {
      r.roofline = bench::decode_roofline(r.decode_bytes, o->bandwidth_gbs);
    } else if (!o->no_bandwidth) {
      // After the tests, so that its arrays do not count in the peak RSS of the model.
      r.peak_rss = bench::peak_rss_bytes();
      if (!o->quiet) std::fprintf(stderr, "bandwidth probe\n");
      bench::BandwidthConfig bc;
      bc.n_threads = o->n_threads;
      r.bandwidth = bench::measure_bandwidth(bc);
      r.roofline = bench::decode_roofline(r.decode_bytes, r.bandwidth->best_gbs);
    }
    if (r.peak_rss == 0) r.peak_rss = bench::peak_rss_bytes();
    if (o->json)
      std::printf("%s\n", bench::latency_json(r).dump(2).c_str());
    else
      std::fputs(bench::format_latency_table(r).c_str(), stdout);
    return 0;
  };
}

}  // namespace

Runner add_bench(CLI::App& app) {
  app.require_subcommand(0, 1);
  CLI::App* serve = app.add_subcommand("serve", "load an OpenAI-compatible server over HTTP");
  Runner run_serve = add_bench_serve(*serve);
  CLI::App* bw = app.add_subcommand("bandwidth", "memory bandwidth (STREAM triad)");
  Runner run_bw = add_bench_bandwidth(*bw);
  Runner run_latency = add_bench_latency(app);
  return [serve, run_serve, bw, run_bw, run_latency] {
    if (serve->parsed()) return run_serve();
    if (bw->parsed()) return run_bw();
    return run_latency();
  };
}

}  // namespace tessera::cli
