// Pieces of `tessera bench` (latency mode): statistics, VmHWM parsing, the roofline and
// the weight bytes one decode step reads, checked against a hand count for stories260K.
#include <gtest/gtest.h>

#include <cmath>

#include "bench/latency_bench.h"
#include "models/model.h"

namespace tessera {
namespace {

const std::string kModel = std::string(TESSERA_TEST_DATA) + "/stories260K-f32.gguf";

TEST(LatencyBench, MeanAndSampleStddev) {
  const bench::MeanStd m = bench::mean_stddev({2, 4, 4, 4, 5, 5, 7, 9});
  EXPECT_DOUBLE_EQ(m.mean, 5.0);
  EXPECT_NEAR(m.stddev, std::sqrt(32.0 / 7.0), 1e-12);  // n - 1 in the denominator
  const bench::MeanStd one = bench::mean_stddev({3.5});
  EXPECT_DOUBLE_EQ(one.mean, 3.5);
  EXPECT_DOUBLE_EQ(one.stddev, 0.0);
  const bench::MeanStd none = bench::mean_stddev({});
  EXPECT_DOUBLE_EQ(none.mean, 0.0);
}

TEST(LatencyBench, ParsesVmHwm) {
  const std::string status =
      "Name:\ttessera\nVmPeak:\t  999999 kB\nVmHWM:\t   123456 kB\nVmRSS:\t   100000 kB\n";
  EXPECT_EQ(bench::parse_vm_hwm(status), 123456ull * 1024);
  EXPECT_EQ(bench::parse_vm_hwm("Name:\tx\n"), 0u);
  EXPECT_GT(bench::peak_rss_bytes(), 0u);  // this process, on Linux
}

TEST(LatencyBench, Roofline) {
  const bench::Roofline r = bench::decode_roofline(500'000'000, 20.0);
  EXPECT_DOUBLE_EQ(r.max_tps, 40.0);  // 20e9 B/s / 5e8 B per token
  EXPECT_DOUBLE_EQ(bench::decode_roofline(0, 20.0).max_tps, 0.0);
}

TEST(LatencyBench, DecodeBytesOfStories260K) {
  // stories260K, all F32: n_embd 64, 5 layers, 8 heads, 4 KV heads (kv_dim 32), n_ff 172,
  // vocab 512, untied output.
  //   per layer: q 64*64 + k 64*32 + v 64*32 + o 64*64 + gate/up/down 3 * 64*172
  //            = 4096 + 2048 + 2048 + 4096 + 33024 = 45312 elements = 181248 bytes
  //   5 layers = 906240; output 64*512*4 = 131072; one embedding row 64*4 = 256
  auto m = load_model(kModel);
  const WeightStats& w = m->weight_stats();
  EXPECT_EQ(w.decode_bytes, 906240u + 131072u + 256u);
  // Every tensor: layers (45312 + two norms of 64) * 5 + embedding + output + output norm.
  EXPECT_EQ(w.n_params, (45312u + 128u) * 5 + 32768u + 32768u + 64u);
  EXPECT_EQ(w.n_bytes, w.n_params * 4);
}

TEST(LatencyBench, DecodeBytesFollowLoadTimeQuantization) {
  // Q8_0: 34 bytes per 32 weights. Rows of 64 -> 68 bytes; the rows of 172 of ffn_down do
  // not split into blocks of 32 and fall back to F16 (converted_type).
  ModelOptions o;
  o.quantization = "q8_0";
  auto m = load_model(kModel, o);
  const uint64_t per_layer = (64 + 32 + 32 + 64 + 172 + 172) * 68 + 64 * 172 * 2;
  EXPECT_EQ(m->weight_stats().decode_bytes, 5 * per_layer + 512 * 68 + 68);
}

TEST(LatencyBench, RunsTests) {
  ModelOptions o;
  o.n_threads = 1;
  auto m = load_model(kModel, o);
  bench::LatencyConfig cfg;
  cfg.n_prompt = {8};
  cfg.n_gen = {4};
  cfg.repetitions = 2;
  const auto tests = bench::run_latency_tests(*m, cfg, true);
  ASSERT_EQ(tests.size(), 2u);
  EXPECT_EQ(tests[0].name, "pp8");
  EXPECT_EQ(tests[1].name, "tg4");
  for (const auto& t : tests) {
    ASSERT_EQ(t.tps.size(), 2u);
    EXPECT_GT(t.ts.mean, 0);
  }
}

}  // namespace
}  // namespace tessera
