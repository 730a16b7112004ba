// Serving benchmark: statistics, timing definitions, SSE parsing, chunk and body formats.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "bench/bench_stats.h"
#include "bench/serve_bench.h"
#include "bench/sse_parser.h"

namespace tessera::bench {
namespace {

TEST(BenchStats, PercentileInterpolatesLikeNumpy) {
  // numpy.percentile([1, 2, 3, 4], q) with the default linear method.
  std::vector<double> v = {4, 1, 3, 2};
  EXPECT_DOUBLE_EQ(percentile(v, 0), 1.0);
  EXPECT_DOUBLE_EQ(percentile(v, 50), 2.5);
  EXPECT_DOUBLE_EQ(percentile(v, 90), 3.7);
  EXPECT_DOUBLE_EQ(percentile(v, 99), 3.97);
  EXPECT_DOUBLE_EQ(percentile(v, 100), 4.0);
  EXPECT_DOUBLE_EQ(percentile({7}, 99), 7.0);
  EXPECT_DOUBLE_EQ(percentile({}, 50), 0.0);
  std::vector<double> hundred;
  for (int i = 1; i <= 101; ++i) hundred.push_back(i);
  EXPECT_DOUBLE_EQ(percentile(hundred, 99), 100.0);
  EXPECT_DOUBLE_EQ(percentile(hundred, 50), 51.0);
}

TEST(BenchStats, MetricStats) {
  MetricStats m = metric_stats({2, 4, 4, 4, 5, 5, 7, 9});
  EXPECT_EQ(m.count, 8u);
  EXPECT_DOUBLE_EQ(m.mean, 5.0);
  EXPECT_DOUBLE_EQ(m.std, 2.0);  // population standard deviation
  EXPECT_DOUBLE_EQ(m.median, 4.5);
  EXPECT_DOUBLE_EQ(m.min, 2.0);
  EXPECT_DOUBLE_EQ(m.max, 9.0);
  EXPECT_EQ(metric_stats({}).count, 0u);
}

TEST(BenchStats, RequestTimingDefinitions) {
  // Sent at 1.0; chunks at 1.5, 1.6, 1.8, 2.1; response ends at 2.2; 4 tokens.
  RequestTiming t = request_timing(1.0, {1.5, 1.6, 1.8, 2.1}, 2.2, 4);
  EXPECT_NEAR(t.ttft, 0.5, 1e-12);
  EXPECT_NEAR(t.e2e, 1.2, 1e-12);
  ASSERT_EQ(t.itl.size(), 3u);
  EXPECT_NEAR(t.itl[0], 0.1, 1e-12);
  EXPECT_NEAR(t.itl[1], 0.2, 1e-12);
  EXPECT_NEAR(t.itl[2], 0.3, 1e-12);
  EXPECT_NEAR(t.tpot, (1.2 - 0.5) / 3, 1e-12);  // (e2e - ttft) / (tokens - 1)

  // Usage says 8 tokens though only 2 chunks came: TPOT uses the token count.
  t = request_timing(0.0, {0.2, 0.9}, 1.0, 8);
  EXPECT_NEAR(t.tpot, 0.8 / 7, 1e-12);
  ASSERT_EQ(t.itl.size(), 1u);

  t = request_timing(0.0, {0.3}, 0.3, 1);
  EXPECT_LT(t.tpot, 0);  // undefined for a single token
  EXPECT_TRUE(t.itl.empty());
}

RequestResult ok_result(double send, std::vector<double> chunks, double end, int64_t in,
                        int64_t out) {
  RequestResult r;
  r.success = true;
  r.status = 200;
  r.send_time = send;
  r.chunk_times = std::move(chunks);
  r.end_time = end;
  r.prompt_tokens = in;
  r.output_tokens = out;
  return r;
}

TEST(BenchStats, SummarizeCountsAndThroughput) {
  std::vector<RequestResult> rs;
  rs.push_back(ok_result(0.0, {0.1, 0.2, 0.3}, 0.3, 10, 3));
  rs.push_back(ok_result(0.0, {0.3, 0.4, 0.5}, 0.5, 10, 3));
  RequestResult rejected;
  rejected.status = 429;
  rejected.rejected = true;
  rejected.error = "HTTP 429: busy";
  rs.push_back(rejected);
  RequestResult broken;
  broken.error = "request failed: Connection";
  rs.push_back(broken);

  BenchSummary s = summarize(rs, 2.0, 3);
  EXPECT_EQ(s.num_requests, 4);
  EXPECT_EQ(s.completed, 2);
  EXPECT_EQ(s.failed, 2);
  EXPECT_EQ(s.rejected, 1);
  EXPECT_EQ(s.unexpected_output_len, 0);
  EXPECT_EQ(s.total_input_tokens, 20);
  EXPECT_EQ(s.total_output_tokens, 6);
  EXPECT_DOUBLE_EQ(s.request_throughput, 1.0);
  EXPECT_DOUBLE_EQ(s.output_throughput, 3.0);
  EXPECT_DOUBLE_EQ(s.total_token_throughput, 13.0);
  EXPECT_NEAR(s.ttft.mean, 200.0, 1e-9);
  EXPECT_NEAR(s.ttft.median, 200.0, 1e-9);
  EXPECT_EQ(s.itl.count, 4u);
  EXPECT_NEAR(s.itl.mean, 100.0, 1e-9);
  EXPECT_NEAR(s.tpot.mean, 100.0, 1e-9);
  EXPECT_NEAR(s.e2e.mean, 400.0, 1e-9);
  ASSERT_EQ(s.status_counts.size(), 2u);
  EXPECT_EQ(s.status_counts[0], (std::pair<int, int64_t>{0, 1}));
  EXPECT_EQ(s.status_counts[1], (std::pair<int, int64_t>{429, 1}));
  EXPECT_EQ(s.error_samples.size(), 2u);

  EXPECT_EQ(summarize(rs, 2.0, 5).unexpected_output_len, 2);
  nlohmann::json j = summary_json(s, rs);
  EXPECT_EQ(j["completed"], 2);
  EXPECT_EQ(j["rejected"], 1);
  EXPECT_NEAR(j["p99_ttft_ms"].get<double>(), 298.0, 1e-6);  // 100 + 0.99 * 200
  EXPECT_EQ(j["requests"].size(), 4u);
  EXPECT_EQ(j["failed_by_status"]["429"], 1);

  std::string report = format_report(s);
  EXPECT_NE(report.find("Successful requests:"), std::string::npos);
  EXPECT_NE(report.find("Mean TTFT (ms):"), std::string::npos);
  EXPECT_NE(report.find("HTTP 429"), std::string::npos);
}

std::vector<SseEvent> parse_in_pieces(const std::string& stream, size_t piece) {
  SseParser p;
  std::vector<SseEvent> out;
  auto on = [&](const SseEvent& e) { out.push_back(e); };
  for (size_t i = 0; i < stream.size(); i += piece) p.feed(stream.substr(i, piece), on);
  p.finish(on);
  return out;
}

TEST(SseParser, EventsSplitAnywhere) {
  const std::string stream =
      ": keep-alive comment\n\n"
      "data: {\"a\":1}\n\n"
      "data:{\"b\":2}\r\n\r\n"
      "event: ping\ndata: x\n\n"
      "data: line1\ndata: line2\n\n"
      "id: 7\nretry: 10\n\n"
      "data: [DONE]\n\n";
  for (size_t piece : {1u, 2u, 3u, 7u, 1000u}) {
    std::vector<SseEvent> ev = parse_in_pieces(stream, piece);
    ASSERT_EQ(ev.size(), 5u) << "piece " << piece;
    EXPECT_EQ(ev[0].event, "message");
    EXPECT_EQ(ev[0].data, "{\"a\":1}");
    EXPECT_EQ(ev[1].data, "{\"b\":2}");  // no space after the colon, CRLF line ends
    EXPECT_EQ(ev[2].event, "ping");
    EXPECT_EQ(ev[2].data, "x");
    EXPECT_EQ(ev[3].data, "line1\nline2");
    EXPECT_EQ(ev[4].data, "[DONE]");
  }
}

TEST(SseParser, BareCarriageReturnsAndUnterminatedLastEvent) {
  std::vector<SseEvent> ev = parse_in_pieces("data: one\r\rdata: two", 4);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].data, "one");
  EXPECT_EQ(ev[1].data, "two");
}

TEST(SseParser, ErrorFieldBecomesErrorEvent) {
  std::vector<SseEvent> ev = parse_in_pieces("error: {\"message\":\"boom\"}\n\n", 5);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].event, "error");
  EXPECT_EQ(ev[0].data, "{\"message\":\"boom\"}");
}

TEST(ServeBench, ParseChunk) {
  ChunkInfo c = parse_chunk(R"({"choices":[{"index":0,"text":" hi"}]})", false);
  EXPECT_TRUE(c.has_output);
  EXPECT_FALSE(c.has_usage);
  c = parse_chunk(R"({"choices":[{"index":0,"text":"","finish_reason":"length"}],)"
                  R"("usage":{"prompt_tokens":12,"completion_tokens":34}})",
                  false);
  EXPECT_FALSE(c.has_output);
  EXPECT_TRUE(c.has_usage);
  EXPECT_EQ(c.prompt_tokens, 12);
  EXPECT_EQ(c.completion_tokens, 34);
  c = parse_chunk(R"({"choices":[],"usage":null})", false);
  EXPECT_FALSE(c.has_output);
  EXPECT_FALSE(c.has_usage);
  c = parse_chunk(R"({"choices":[{"delta":{"role":"assistant","content":""}}]})", true);
  EXPECT_FALSE(c.has_output);  // the role-only first chat chunk carries no output
  c = parse_chunk(R"({"choices":[{"delta":{"content":"Hello"}}]})", true);
  EXPECT_TRUE(c.has_output);
  c = parse_chunk(R"({"choices":[{"delta":{"reasoning_content":"hmm"}}]})", true);
  EXPECT_TRUE(c.has_output);
  EXPECT_TRUE(parse_chunk("[DONE]", false).done);
  EXPECT_TRUE(parse_chunk("[DONE] \n", true).done);
  EXPECT_NE(parse_chunk(R"({"error":{"message":"overloaded"}})", false).error.find("overloaded"),
            std::string::npos);
  EXPECT_FALSE(parse_chunk("not json", false).error.empty());
}

TEST(ServeBench, RequestBodies) {
  ServeBenchConfig cfg;
  cfg.model = "m";
  cfg.num_prompts = 3;
  cfg.input_len = 5;
  cfg.output_len = 7;
  cfg.seed = 42;
  std::vector<Prompt> ps = make_prompts(cfg);
  ASSERT_EQ(ps.size(), 3u);
  for (const Prompt& p : ps) {
    ASSERT_EQ(p.ids.size(), 5u);
    EXPECT_EQ(p.tokens, 5);
    for (int32_t id : p.ids) {
      EXPECT_GE(id, cfg.token_id_min);
      EXPECT_LT(id, cfg.token_id_max);
    }
  }
  EXPECT_NE(ps[0].ids, ps[1].ids);
  EXPECT_EQ(make_prompts(cfg)[2].ids, ps[2].ids);  // reproducible from the seed

  nlohmann::json b = request_body(cfg, ps[0]);
  EXPECT_EQ(b["model"], "m");
  EXPECT_EQ(b["prompt"].size(), 5u);
  EXPECT_EQ(b["max_tokens"], 7);
  EXPECT_EQ(b["min_tokens"], 7);
  EXPECT_EQ(b["ignore_eos"], true);
  EXPECT_EQ(b["stream"], true);
  EXPECT_EQ(b["stream_options"]["include_usage"], true);
  EXPECT_EQ(b["temperature"], 0.0);

  cfg.endpoint = "/v1/chat/completions";
  cfg.ignore_eos = false;
  ps = make_prompts(cfg);
  EXPECT_TRUE(ps[0].ids.empty());
  b = request_body(cfg, ps[0]);
  EXPECT_FALSE(b.contains("prompt"));
  EXPECT_EQ(b["messages"][0]["role"], "user");
  EXPECT_EQ(b["max_completion_tokens"], 7);
  EXPECT_FALSE(b.contains("ignore_eos"));
  EXPECT_FALSE(b.contains("min_tokens"));
}

TEST(ServeBench, ArrivalTimes) {
  std::vector<double> t = arrival_times(5, std::numeric_limits<double>::infinity(), 1.0, 0);
  for (double x : t) EXPECT_EQ(x, 0.0);
  t = arrival_times(2000, 10.0, 1.0, 1);
  EXPECT_EQ(t[0], 0.0);
  for (size_t i = 1; i < t.size(); ++i) EXPECT_GE(t[i], t[i - 1]);
  // Mean gap 1/rate = 0.1 s; 2000 samples put the mean within a few percent.
  EXPECT_NEAR(t.back() / (t.size() - 1), 0.1, 0.01);
}

}  // namespace
}  // namespace tessera::bench
