#include "bench/serve_bench.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <list>
#include <memory>
#include <random>
#include <semaphore>
#include <thread>

#include "bench/sse_parser.h"
#include "core/error.h"
#include "core/progress.h"

namespace tessera::bench {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string shorten(std::string s, size_t max = 300) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  if (s.size() > max) s = s.substr(0, max) + "...";
  return s;
}

// Common short English words; most are a single token with a leading space in BPE
// vocabularies, so N words make roughly N tokens.
constexpr const char* kWords[] = {
    "the",   "of",    "and",   "to",     "in",   "is",   "you",   "that",   "it",    "he",
    "was",   "for",   "on",    "are",    "as",   "with", "his",   "they",   "at",    "be",
    "this",  "have",  "from",  "or",     "one",  "had",  "by",    "word",   "but",   "not",
    "what",  "all",   "were",  "we",     "when", "your", "can",   "said",   "there", "use",
    "an",    "each",  "which", "she",    "do",   "how",  "their", "if",     "will",  "up",
    "other", "about", "out",   "many",   "then", "them", "these", "so",     "some",  "her",
    "would", "make",  "like",  "him",    "into", "time", "has",   "look",   "two",   "more",
    "write", "go",    "see",   "number", "no",   "way",  "could", "people", "my",    "than",
    "first", "water", "been",  "call",   "who",  "oil",  "its",   "now",    "find",  "long",
    "down",  "day",   "did",   "get",    "come", "made", "may",   "part",   "sun",   "tree"};

std::string random_words(std::mt19937_64& rng, int n) {
  std::uniform_int_distribution<size_t> pick(0, std::size(kWords) - 1);
  std::string s;
  for (int i = 0; i < n; ++i) {
    if (i) s += ' ';
    s += kWords[pick(rng)];
  }
  return s;
}

httplib::Headers auth_headers(const ServeBenchConfig& cfg) {
  httplib::Headers h;
  if (!cfg.api_key.empty()) h.emplace("Authorization", "Bearer " + cfg.api_key);
  return h;
}

void set_timeouts(httplib::Client& cli, double timeout_s) {
  const auto t = std::chrono::microseconds(static_cast<int64_t>(timeout_s * 1e6));
  cli.set_connection_timeout(std::min(t, std::chrono::microseconds(10'000'000)));
  cli.set_read_timeout(t);
  cli.set_write_timeout(t);
}

// The id of the first model the server lists, or "" if it does not answer.
std::string discover_model(const ServeBenchConfig& cfg) {
  httplib::Client cli(cfg.host, cfg.port);
  set_timeouts(cli, std::min(cfg.timeout_s, 10.0));
  auto res = cli.Get("/v1/models", auth_headers(cfg));
  if (!res || res->status != 200) return "";
  auto j = nlohmann::json::parse(res->body, nullptr, false);
  if (j.is_discarded() || !j.contains("data") || !j["data"].is_array() || j["data"].empty())
    return "";
  const auto& m = j["data"][0];
  return m.contains("id") && m["id"].is_string() ? m["id"].get<std::string>() : "";
}

// Sends one streaming request and times its chunks. Never throws for server misbehaviour.
RequestResult send_request(const ServeBenchConfig& cfg, const std::string& body, bool chat,
                           int64_t known_prompt_tokens, Clock::time_point t0) {
  RequestResult r;
  httplib::Client cli(cfg.host, cfg.port);
  set_timeouts(cli, cfg.timeout_s);
  cli.set_decompress(false);

  httplib::Request req;
  req.method = "POST";
  req.path = cfg.endpoint;
  req.headers = auth_headers(cfg);
  req.set_header("Content-Type", "application/json");
  req.set_header("Accept", "text/event-stream");
  req.body = body;

  int status = 0;
  std::string error_body, stream_error;
  bool done = false, timed_out = false;
  SseParser parser;
  int64_t output_chunks = 0;
  double now = 0;
  auto on_event = [&](const SseEvent& ev) {
    if (!stream_error.empty() || done) return;
    if (ev.event == "error") {
      stream_error = "error event in stream: " + shorten(ev.data);
      return;
    }
    ChunkInfo c = parse_chunk(ev.data, chat);
    if (!c.error.empty()) {
      stream_error = c.error;
      return;
    }
    if (c.done) {
      done = true;
      return;
    }
    if (c.has_usage) {
      r.usage_reported = true;
      r.prompt_tokens = c.prompt_tokens;
      r.output_tokens = c.completion_tokens;
    }
    if (c.has_output) {
      r.chunk_times.push_back(now);
      ++output_chunks;
    }
  };
  const auto deadline =
      Clock::now() + std::chrono::microseconds(static_cast<int64_t>(cfg.timeout_s * 1e6));
  req.response_handler = [&](const httplib::Response& res) {
    status = res.status;
    return true;
  };
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    now = seconds_since(t0);
    if (status != 200) {
      if (error_body.size() < 4096) error_body.append(data, std::min<size_t>(n, 4096));
    } else {
      parser.feed(std::string_view(data, n), on_event);
      if (!stream_error.empty()) return false;
    }
    if (Clock::now() > deadline) {
      timed_out = true;
      return false;
    }
    return true;
  };

  r.send_time = seconds_since(t0);
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  const bool ok = cli.send(req, res, err);
  r.end_time = seconds_since(t0);
  r.status = status;

  auto fail = [&](std::string why) {
    r.success = false;
    r.error = std::move(why);
    return r;
  };
  if (!stream_error.empty()) return fail(stream_error);
  if (timed_out) return fail("timed out after " + std::to_string(cfg.timeout_s) + " s");
  if (!ok) {
    std::string why = httplib::to_string(err);
    if (err == httplib::Error::Read && r.end_time - r.send_time >= cfg.timeout_s * 0.99)
      why = "timed out after " + std::to_string(cfg.timeout_s) + " s (no data)";
    return fail("request failed: " + why);
  }
  if (status != 200) {
    r.rejected = status == 429 || status == 503;
    return fail("HTTP " + std::to_string(status) + ": " + shorten(error_body));
  }
  parser.finish(on_event);
  if (!stream_error.empty()) return fail(stream_error);
  if (output_chunks == 0) return fail("the response streamed no output");
  if (!r.usage_reported) {
    r.output_tokens = output_chunks;
    r.prompt_tokens = known_prompt_tokens;
  } else if (r.prompt_tokens == 0) {
    r.prompt_tokens = known_prompt_tokens;
  }
  r.success = true;
  return r;
}

nlohmann::json config_json(const ServeBenchConfig& c) {
  return {{"host", c.host},
          {"port", c.port},
          {"model", c.model},
          {"endpoint", c.endpoint},
          {"num_prompts", c.num_prompts},
          {"max_concurrency", c.max_concurrency},
          {"request_rate",
           std::isinf(c.request_rate) ? nlohmann::json("inf") : nlohmann::json(c.request_rate)},
          {"burstiness", c.burstiness},
          {"input_len", c.input_len},
          {"output_len", c.output_len},
          {"prompt_file", c.prompt_file},
          {"text_prompts", c.text_prompts},
          {"seed", c.seed},
          {"ignore_eos", c.ignore_eos},
          {"temperature", c.temperature},
          {"timeout_s", c.timeout_s}};
}

}  // namespace

bool is_chat_endpoint(const std::string& endpoint) {
  return endpoint.find("chat") != std::string::npos;
}

std::vector<Prompt> make_prompts(const ServeBenchConfig& cfg) {
  std::vector<Prompt> prompts(cfg.num_prompts);
  std::mt19937_64 rng(cfg.seed);
  if (!cfg.prompt_file.empty()) {
    std::ifstream f(cfg.prompt_file);
    if (!f) throw Error("cannot read '" + cfg.prompt_file + "'");
    std::vector<std::string> lines;
    for (std::string line; std::getline(f, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) lines.push_back(line);
    }
    if (lines.empty()) throw Error("'" + cfg.prompt_file + "' holds no prompts");
    for (int i = 0; i < cfg.num_prompts; ++i) prompts[i].text = lines[i % lines.size()];
    return prompts;
  }
  const bool text = cfg.text_prompts || is_chat_endpoint(cfg.endpoint);
  std::uniform_int_distribution<int32_t> id(cfg.token_id_min, cfg.token_id_max - 1);
  for (Prompt& p : prompts) {
    if (text) {
      p.text = random_words(rng, cfg.input_len);
    } else {
      p.ids.resize(cfg.input_len);
      for (int32_t& t : p.ids) t = id(rng);
      p.tokens = cfg.input_len;
    }
  }
  return prompts;
}

nlohmann::json request_body(const ServeBenchConfig& cfg, const Prompt& prompt) {
  nlohmann::json j;
  if (!cfg.model.empty()) j["model"] = cfg.model;
  if (is_chat_endpoint(cfg.endpoint)) {
    j["messages"] = nlohmann::json::array({{{"role", "user"}, {"content", prompt.text}}});
    j["max_completion_tokens"] = cfg.output_len;
  } else if (!prompt.ids.empty()) {
    j["prompt"] = prompt.ids;
  } else {
    j["prompt"] = prompt.text;
  }
  j["max_tokens"] = cfg.output_len;
  j["temperature"] = cfg.temperature;
  j["stream"] = true;
  j["stream_options"] = {{"include_usage", true}};
  if (cfg.ignore_eos) {
    j["ignore_eos"] = true;
    if (cfg.send_min_tokens) j["min_tokens"] = cfg.output_len;
  }
  for (const auto& [k, v] : cfg.extra_body.items()) j[k] = v;
  return j;
}

ChunkInfo parse_chunk(std::string_view data, bool chat) {
  ChunkInfo c;
  std::string_view trimmed = data;
  while (!trimmed.empty() && std::isspace(static_cast<unsigned char>(trimmed.back())))
    trimmed.remove_suffix(1);
  if (trimmed == "[DONE]") {
    c.done = true;
    return c;
  }
  auto j = nlohmann::json::parse(data, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    c.error = "unparseable chunk: " + shorten(std::string(data));
    return c;
  }
  if (j.contains("error") && !j["error"].is_null()) {
    const auto& e = j["error"];
    std::string msg = e.is_object() && e.contains("message") && e["message"].is_string()
                          ? e["message"].get<std::string>()
                          : e.dump();
    c.error = "error in stream: " + shorten(msg);
    return c;
  }
  auto nonempty_string = [](const nlohmann::json& o, const char* key) {
    return o.is_object() && o.contains(key) && o[key].is_string() &&
           !o[key].get_ref<const std::string&>().empty();
  };
  if (j.contains("choices") && j["choices"].is_array() && !j["choices"].empty()) {
    const auto& c0 = j["choices"][0];
    if (chat) {
      if (c0.contains("delta")) {
        const auto& d = c0["delta"];
        c.has_output = nonempty_string(d, "content") || nonempty_string(d, "reasoning_content") ||
                       nonempty_string(d, "reasoning");
      }
    } else {
      c.has_output = nonempty_string(c0, "text");
    }
  }
  if (j.contains("usage") && j["usage"].is_object()) {
    const auto& u = j["usage"];
    c.has_usage = true;
    if (u.contains("prompt_tokens") && u["prompt_tokens"].is_number_integer())
      c.prompt_tokens = u["prompt_tokens"].get<int64_t>();
    if (u.contains("completion_tokens") && u["completion_tokens"].is_number_integer())
      c.completion_tokens = u["completion_tokens"].get<int64_t>();
  }
  return c;
}

std::vector<double> arrival_times(int n, double rate, double burstiness, uint64_t seed) {
  std::vector<double> t(n, 0.0);
  if (std::isinf(rate) || n == 0) return t;
  std::mt19937_64 rng(seed ^ 0x9e3779b97f4a7c15ULL);
  std::gamma_distribution<double> gap(burstiness, 1.0 / (rate * burstiness));
  for (int i = 1; i < n; ++i) t[i] = t[i - 1] + gap(rng);
  return t;
}

ServeBenchResult run_serve_bench(ServeBenchConfig cfg) {
  if (cfg.num_prompts < 1) throw Error("--num-prompts must be at least 1");
  if (cfg.max_concurrency < 0) throw Error("--max-concurrency must not be negative");
  if (!(cfg.request_rate > 0)) throw Error("--request-rate must be positive (or inf)");
  if (!(cfg.burstiness > 0)) throw Error("--burstiness must be positive");
  if (cfg.output_len < 1) throw Error("--output-len must be at least 1");
  if (cfg.prompt_file.empty() && cfg.input_len < 1) throw Error("--input-len must be at least 1");
  if (cfg.token_id_min < 0 || cfg.token_id_max <= cfg.token_id_min)
    throw Error("the token id range is empty");
  if (!(cfg.timeout_s > 0)) throw Error("--timeout must be positive");
  if (cfg.port < 1 || cfg.port > 65535) throw Error("--port must be in 1..65535");
  if (cfg.endpoint.empty() || cfg.endpoint.front() != '/')
    throw Error("--endpoint must be a path starting with '/'");

  const bool chat = is_chat_endpoint(cfg.endpoint);
  if (cfg.model.empty()) {
    cfg.model = discover_model(cfg);
    if (!cfg.quiet && !cfg.model.empty())
      std::fprintf(stderr, "model: %s (from /v1/models)\n", cfg.model.c_str());
  }
  const std::vector<Prompt> prompts = make_prompts(cfg);
  std::vector<std::string> bodies;
  for (const Prompt& p : prompts) bodies.push_back(request_body(cfg, p).dump());
  const std::vector<double> arrivals =
      arrival_times(cfg.num_prompts, cfg.request_rate, cfg.burstiness, cfg.seed);

  const int n = cfg.num_prompts;
  std::vector<RequestResult> results(n);
  std::atomic<int> finished{0};
  const int progress_every = std::max(1, n / 10);
  if (!cfg.quiet)
    std::fprintf(stderr, "sending %d requests to http://%s:%d%s\n", n, cfg.host.c_str(), cfg.port,
                 cfg.endpoint.c_str());

  // On a terminal a progress line (requests from worker threads); otherwise a line per
  // tenth of the requests.
  Progress progress("bench serve", static_cast<uint64_t>(n), "req");
  const Clock::time_point t0 = Clock::now();
  auto run_one = [&](int i) {
    results[i] = send_request(cfg, bodies[i], chat, prompts[i].tokens, t0);
    const int k = ++finished;
    progress.add();
    if (!cfg.quiet && !progress.active() && (k % progress_every == 0 || k == n))
      std::fprintf(stderr, "  %d/%d done (%.1f s)\n", k, n, seconds_since(t0));
  };

  if (std::isinf(cfg.request_rate) && cfg.max_concurrency > 0) {
    // Fixed concurrency: C workers, each sending requests back to back.
    std::atomic<int> next{0};
    std::vector<std::thread> workers;
    for (int w = 0; w < std::min(cfg.max_concurrency, n); ++w)
      workers.emplace_back([&] {
        for (int i; (i = next++) < n;) run_one(i);
      });
    for (std::thread& t : workers) t.join();
  } else {
    // Arrivals on a schedule (all at once for an infinite rate): a thread per request in
    // flight, at most max_concurrency of them; a request whose time has come waits for a
    // free slot, and its latency counts from when it is actually sent.
    std::counting_semaphore<> slots(cfg.max_concurrency > 0 ? cfg.max_concurrency : n);
    struct InFlight {
      std::thread thread;
      std::shared_ptr<std::atomic<bool>> done;
    };
    std::list<InFlight> in_flight;
    auto reap = [&] {
      for (auto it = in_flight.begin(); it != in_flight.end();) {
        if (it->done->load()) {
          it->thread.join();
          it = in_flight.erase(it);
        } else {
          ++it;
        }
      }
    };
    for (int i = 0; i < n; ++i) {
      std::this_thread::sleep_until(t0 + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(arrivals[i])));
      slots.acquire();
      reap();
      auto done = std::make_shared<std::atomic<bool>>(false);
      in_flight.push_back({std::thread([&, i, done] {
                             run_one(i);
                             done->store(true);
                             slots.release();
                           }),
                           done});
    }
    for (InFlight& f : in_flight) f.thread.join();
  }
  progress.finish();
  const double duration = seconds_since(t0);

  ServeBenchResult out;
  out.summary = summarize(results, duration, cfg.ignore_eos ? cfg.output_len : 0);
  out.json = summary_json(out.summary, results);
  out.json["config"] = config_json(cfg);
  out.requests = std::move(results);
  return out;
}

}  // namespace tessera::bench
