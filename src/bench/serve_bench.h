// `tessera bench serve`: a load generator for OpenAI-compatible servers. Sends streaming
// /v1/completions or /v1/chat/completions requests at a fixed concurrency or with Poisson
// arrivals, timestamps every streamed chunk and reports throughput and TTFT / TPOT / ITL /
// end-to-end latency (see bench_stats.h for the definitions).
#pragma once
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "bench/bench_stats.h"

namespace tessera::bench {

struct ServeBenchConfig {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;
  std::string model;  // empty: ask GET /v1/models, else leave the field out
  std::string endpoint = "/v1/completions";
  int num_prompts = 100;
  int max_concurrency = 0;                                        // 0: unbounded
  double request_rate = std::numeric_limits<double>::infinity();  // req/s
  double burstiness = 1.0;  // gamma shape of the arrival gaps; 1 = Poisson
  int input_len = 128, output_len = 128;
  std::string prompt_file;    // one prompt per line; replaces the synthetic prompts
  bool text_prompts = false;  // random words instead of token ids on /v1/completions
  int32_t token_id_min = 100, token_id_max = 10000;  // range of the random token ids
  uint64_t seed = 0;
  bool ignore_eos = true;
  bool send_min_tokens = true;  // with ignore_eos: also send min_tokens = output_len
  double temperature = 0;
  double timeout_s = 600;  // per request, from send to the end of the response
  bool quiet = false;      // no progress on stderr
  // Fields merged into every request body (e.g. a response_format), overriding ours.
  nlohmann::json extra_body = nlohmann::json::object();
};

struct Prompt {
  std::vector<int32_t> ids;  // token ids, or empty for a text prompt
  std::string text;
  int64_t tokens = 0;  // known prompt length in tokens (0 if not known)
};

bool is_chat_endpoint(const std::string& endpoint);

// The prompts of the run, one per request, reproducible from the seed.
std::vector<Prompt> make_prompts(const ServeBenchConfig& cfg);

// The JSON body of one streaming request.
nlohmann::json request_body(const ServeBenchConfig& cfg, const Prompt& prompt);

// What one streamed chunk (an SSE data payload) says.
struct ChunkInfo {
  bool done = false;        // the "[DONE]" sentinel
  bool has_output = false;  // carries generated text or tokens
  bool has_usage = false;
  int64_t prompt_tokens = 0, completion_tokens = 0;
  std::string error;  // non-empty: the server reported an error in the stream
};
ChunkInfo parse_chunk(std::string_view data, bool chat);

// Arrival times (seconds from the start) of `n` requests: all 0 for an infinite rate,
// else cumulative gamma(burstiness) gaps with mean 1/rate (the first request at 0).
std::vector<double> arrival_times(int n, double rate, double burstiness, uint64_t seed);

struct ServeBenchResult {
  BenchSummary summary;
  std::vector<RequestResult> requests;
  nlohmann::json json;  // summary_json plus the configuration
};

// Runs the benchmark. Throws tessera::Error for a bad configuration; failures of
// individual requests are counted, never thrown.
ServeBenchResult run_serve_bench(ServeBenchConfig cfg);

}  // namespace tessera::bench
