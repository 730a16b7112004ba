// The engine on a real model (stories260K): batched runs equal one-at-a-time runs,
// preemption under a tiny KV pool changes nothing, prefix caching is used, aborts and
// capacity refusals behave.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <thread>

#include "engine/engine.h"
#include "engine/sequence_runner.h"
#include "models/model.h"

namespace tessera {
namespace {

const std::string kModel = std::string(TESSERA_TEST_DATA) + "/stories260K-f32.gguf";

std::vector<std::vector<int32_t>> prompts(const Model& m) {
  const char* texts[] = {"Once upon a time",
                         "The little dog",
                         "Lily and Ben went to",
                         "One day, a big",
                         "Tom had a red ball",
                         "The sun was",
                         "Mom said",
                         "They played in the park and"};
  std::vector<std::vector<int32_t>> out;
  for (const char* t : texts) out.push_back(m.tokenizer().encode(t, true, false));
  return out;
}

std::vector<int32_t> ids(const Engine::Result& r) {
  std::vector<int32_t> v;
  for (const auto& g : r.tokens) v.push_back(g.token);
  return v;
}

// An engine configuration with a KV pool of `kv_mib` MiB for sequences of up to
// `max_model_len` tokens (stories260K's blocks are tiny: 16 MiB hold thousands of tokens).
EngineConfig small_config(int kv_mib, int max_model_len = 128) {
  EngineConfig cfg;
  cfg.kv_cache_bytes = int64_t{kv_mib} << 20;
  cfg.max_model_len = max_model_len;
  return cfg;
}

GenerateParams greedy(int n) {
  GenerateParams p;
  p.sampling.temperature = 0.0f;
  p.max_tokens = n;
  p.ignore_eos = true;
  return p;
}

TEST(Engine, BatchedEqualsOneAtATime) {
  auto model = load_model(kModel, {.n_threads = 2});
  Engine engine(*model, small_config(64));
  auto ps = prompts(*model);
  std::vector<Engine::Result> together = engine.generate(ps, greedy(40));
  ASSERT_EQ(together.size(), ps.size());
  for (size_t i = 0; i < ps.size(); ++i) {
    std::vector<Engine::Result> alone = engine.generate({ps[i]}, greedy(40));
    EXPECT_EQ(ids(alone[0]), ids(together[i])) << "prompt " << i;
    EXPECT_EQ(together[i].finish, RequestStatus::FINISHED_LENGTH);
    EXPECT_EQ(together[i].tokens.size(), 40u);
  }
}

TEST(Engine, PreemptionUnderATinyPoolGivesTheSameTokens) {
  auto model = load_model(kModel, {.n_threads = 2});
  auto ps = prompts(*model);
  EngineConfig big;
  big.kv_cache_bytes = 64 << 20;
  big.max_model_len = 128;
  std::vector<Engine::Result> expected;
  {
    Engine e(*model, big);
    expected = e.generate(ps, greedy(60));
  }
  EngineConfig tiny = big;
  tiny.block_size = 16;
  // 8 blocks = 128 tokens: one full-length sequence fits, eight growing ones do not.
  tiny.kv_cache_bytes = static_cast<int64_t>(
      KVCache::bytes_per_token(model->config().n_layer, model->config().kv_dim()) * 128);
  Engine e(*model, tiny);
  std::vector<Engine::Result> got = e.generate(ps, greedy(60));
  for (size_t i = 0; i < ps.size(); ++i) EXPECT_EQ(ids(got[i]), ids(expected[i])) << i;
  EXPECT_GT(e.metrics().preemptions_total, 0);
  EXPECT_EQ(e.metrics().kv_blocks_total, 8);
}

TEST(Engine, SharedPrefixHitsTheCache) {
  auto model = load_model(kModel, {.n_threads = 1});
  Engine engine(*model, small_config(16));
  std::vector<int32_t> p = model->tokenizer().encode(
      "Once upon a time, there was a little girl named Lily. She loved to play outside", true,
      false);
  ASSERT_GT(p.size(), 16u);
  auto first = engine.generate({p}, greedy(8));
  auto second = engine.generate({p}, greedy(8));
  EXPECT_EQ(first[0].n_cached_tokens, 0);
  EXPECT_EQ(second[0].n_cached_tokens, static_cast<int>((p.size() - 1) / 16 * 16));
  EXPECT_EQ(ids(first[0]), ids(second[0]));
  EXPECT_GT(engine.metrics().prefix_hit_tokens, 0);
}

TEST(Engine, RejectsBadRequestsAndAbortsCleanly) {
  auto model = load_model(kModel, {.n_threads = 1});
  EngineConfig cfg = small_config(16, 64);
  cfg.max_waiting = 2;
  Engine engine(*model, cfg);
  EXPECT_THROW(engine.submit({}, greedy(4)), Error);
  EXPECT_THROW(engine.submit({1, 99999}, greedy(4)), Error);
  EXPECT_THROW(engine.submit(std::vector<int32_t>(60, 5), greedy(10)), Error);

  // On a loaded machine the engine may finish all 50 tokens of this tiny model before the
  // abort arrives; such a try must have ended by length, and some try must be aborted.
  bool aborted = false;
  for (int attempt = 0; attempt < 20 && !aborted; ++attempt) {
    auto s = engine.submit({1, 400, 500}, greedy(50));
    engine.abort(s->id());
    RequestUpdate all;  // next() appends every update's tokens
    for (int i = 0; i < 1000 && !is_finished(all.finish); ++i)
      s->next(all, std::chrono::milliseconds(10));
    ASSERT_TRUE(is_finished(all.finish));
    if (all.finish == RequestStatus::FINISHED_ABORTED) {
      EXPECT_LT(all.tokens.size(), 50u);
      aborted = true;
    } else {
      EXPECT_EQ(all.finish, RequestStatus::FINISHED_LENGTH);
      EXPECT_EQ(all.tokens.size(), 50u);
    }
  }
  EXPECT_TRUE(aborted);
  for (int i = 0; i < 200 && engine.metrics().kv_blocks_used != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(engine.metrics().kv_blocks_used, 0);
}

TEST(Engine, SeededSamplingIsReproducible) {
  auto model = load_model(kModel, {.n_threads = 1});
  Engine engine(*model, small_config(16));
  GenerateParams p = greedy(30);
  p.sampling.temperature = 1.0f;
  p.sampling.has_seed = true;
  p.sampling.seed = 7;
  auto ps = prompts(*model);
  auto a = engine.generate({ps[0]}, p);
  auto b = engine.generate({ps[0]}, p);
  p.sampling.seed = 8;
  auto c = engine.generate({ps[0]}, p);
  EXPECT_EQ(ids(a[0]), ids(b[0]));
  EXPECT_NE(ids(a[0]), ids(c[0]));
}

TEST(Engine, StopTokenIdsEndAChoiceLikeEndOfGeneration) {
  auto model = load_model(kModel, {.n_threads = 1});
  Engine engine(*model, small_config(16));
  auto ps = prompts(*model);
  const std::vector<int32_t> full = ids(engine.generate({ps[0]}, greedy(30))[0]);
  // The first token that did not occur before it: generation ends right before it.
  size_t k = 3;
  while (std::find(full.begin(), full.begin() + k, full[k]) != full.begin() + k) ++k;
  GenerateParams p = greedy(30);  // ignore_eos: stop ids apply all the same
  p.stop_token_ids = {full[k]};
  const Engine::Result r = engine.generate({ps[0]}, p)[0];
  EXPECT_EQ(r.finish, RequestStatus::FINISHED_STOPPED);
  EXPECT_EQ(ids(r), std::vector<int32_t>(full.begin(), full.begin() + k));
  p.stop_token_ids = {model->config().n_vocab};
  EXPECT_THROW(engine.submit(ps[0], p), Error);
}

TEST(Engine, LogprobsRankTheChosenToken) {
  auto model = load_model(kModel, {.n_threads = 1});
  Engine engine(*model, small_config(16));
  auto ps = prompts(*model);
  GenerateParams p = greedy(20);
  p.logprobs = 3;
  const Engine::Result greedy_run = engine.generate({ps[1]}, p)[0];
  for (const GeneratedToken& g : greedy_run.tokens) {
    ASSERT_EQ(g.top.size(), 3u);
    EXPECT_EQ(g.rank, 1);  // greedy: the most likely token
    EXPECT_EQ(g.top[0].token, g.token);
    EXPECT_FLOAT_EQ(g.top[0].logprob, g.logprob);
  }
  // Sampled at a high temperature: a chosen token inside the top 3 has its place there as
  // rank; one outside it ranks below them all.
  p.sampling.temperature = 3.0f;
  p.sampling.top_k = 0;
  p.sampling.top_p = 1.0f;
  p.sampling.min_p = 0.0f;
  p.sampling.has_seed = true;
  p.sampling.seed = 11;
  int n_outside = 0;
  const Engine::Result sampled = engine.generate({ps[1]}, p)[0];
  for (const GeneratedToken& g : sampled.tokens) {
    int above = 0;
    for (const TokenLogprob& t : g.top) above += t.logprob > g.logprob;
    if (above < 3) {
      EXPECT_EQ(g.rank, above + 1);
      EXPECT_EQ(g.top[above].token, g.token);
    } else {
      EXPECT_GT(g.rank, 3);
      EXPECT_LE(g.rank, model->config().n_vocab);
      ++n_outside;
    }
  }
  EXPECT_GT(n_outside, 0);
}

TEST(Engine, InFlightUntilTheStreamIsReleasedAndAbortAll) {
  auto model = load_model(kModel, {.n_threads = 1});
  Engine engine(*model, small_config(16));
  auto ps = prompts(*model);
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int i = 0; i < 3; ++i) streams.push_back(engine.submit(ps[i], greedy(100)));
  EXPECT_EQ(engine.n_inflight(), 3);
  engine.abort_all();
  for (auto& s : streams) {
    RequestUpdate u;
    for (int i = 0; i < 1000 && !is_finished(u.finish); ++i)
      s->next(u, std::chrono::milliseconds(10));
    EXPECT_EQ(u.finish, RequestStatus::FINISHED_ABORTED);
    EXPECT_STREQ(finish_reason_text(u.finish), "abort");
  }
  // Finished, but the consumer still holds its streams (a server still writing them).
  EXPECT_EQ(engine.n_inflight(), 3);
  streams.clear();
  for (int i = 0; i < 200 && engine.n_inflight() != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(engine.n_inflight(), 0);
  EXPECT_EQ(finish_reason_text(RequestStatus::RUNNING), nullptr);
  EXPECT_STREQ(finish_reason_text(RequestStatus::FINISHED_LENGTH), "length");
}

TEST(Engine, RefusesAnEncoder) {
  auto model = load_model(std::string(TESSERA_TEST_DATA) + "/encoders/bert-cross");
  try {
    Engine engine(*model, small_config(16));
    FAIL() << "an encoder was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("encoder"), std::string::npos) << e.what();
  }
}

// Scoring (SequenceRunner) and generation (Engine) run through the same ModelRunner: the
// logits a scorer sees for a long prompt (tiled attention order) and for single decode
// steps are bit for bit those the engine samples from (same tokens, same log-probabilities).
TEST(ModelRunner, ScoringAndGenerationAgree) {
  auto model = load_model(kModel, {.n_threads = 1});
  std::vector<int32_t> prompt;
  for (int k = 0; k < 2; ++k)
    for (const auto& p : prompts(*model)) prompt.insert(prompt.end(), p.begin(), p.end());
  ASSERT_GE(prompt.size(), static_cast<size_t>(kTiledPromptMin));
  const int n = 12;
  Engine engine(*model, small_config(16, 256));
  GenerateParams p = greedy(n);
  p.logprobs = 0;
  const Engine::Result generated = engine.generate({prompt}, p)[0];
  ASSERT_EQ(generated.tokens.size(), static_cast<size_t>(n));

  SequenceRunner sr(*model, 256);
  const int n_vocab = model->config().n_vocab;
  std::vector<float> logits(n_vocab);
  sr.eval(prompt, {static_cast<int32_t>(prompt.size()) - 1}, logits.data(), 512);
  for (int i = 0; i < n; ++i) {
    const int32_t t =
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    const float lse = static_cast<float>(log_sum_exp(logits.data(), n_vocab));
    EXPECT_EQ(t, generated.tokens[i].token) << i;
    EXPECT_EQ(logits[t] - lse, generated.tokens[i].logprob) << i;
    sr.eval({t}, {0}, logits.data(), 1);
  }
}

}  // namespace
}  // namespace tessera
