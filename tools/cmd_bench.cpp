// tessera bench: benchmarks. `bench serve` loads an OpenAI-compatible server over HTTP and
// reports throughput and TTFT / TPOT / ITL / end-to-end latency.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>

#include "bench/serve_bench.h"
#include "cli_common.h"
#include "core/error.h"

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
    std::string rate = "inf", json_path;
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
  app.add_flag("-q,--quiet", c.quiet, "no progress on stderr");
  return [o] {
    o->cfg.request_rate = parse_rate(o->rate);
    bench::ServeBenchResult r = bench::run_serve_bench(o->cfg);
    std::fputs(bench::format_report(r.summary).c_str(), stdout);
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

}  // namespace

Runner add_bench(CLI::App& app) {
  app.require_subcommand(1);
  CLI::App* serve = app.add_subcommand("serve", "load an OpenAI-compatible server over HTTP");
  Runner run_serve = add_bench_serve(*serve);
  return [serve, run_serve] {
    if (serve->parsed()) return run_serve();
    return 1;
  };
}

}  // namespace tessera::cli
