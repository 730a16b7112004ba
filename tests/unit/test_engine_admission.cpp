// Engine::submit_all admits a group of requests all or none: a group that does not fit
// takes no slot, so it never displaces other clients' requests.
#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "engine/engine.h"
#include "models/model.h"
#include "stream_testing.h"

namespace tessera {
namespace {

const std::string kModel = std::string(TESSERA_TEST_DATA) + "/stories260K-f32.gguf";

GenerateParams long_greedy() {
  GenerateParams p;
  p.sampling.temperature = 0.0f;
  p.max_tokens = 100;
  p.ignore_eos = true;
  return p;
}

TEST(EngineAdmission, GroupsAreAdmittedAllOrNone) {
  auto model = load_model(kModel, {.n_threads = 1});
  EngineConfig cfg;
  cfg.kv_cache_bytes = int64_t{16} << 20;
  cfg.max_model_len = 128;
  cfg.max_num_seqs = 2;
  cfg.max_waiting = 3;
  Engine engine(*model, cfg);
  ASSERT_EQ(engine.capacity(), 5);
  const std::vector<int32_t> prompt = {1, 400, 500};
  auto group = [&](int k) {
    return std::make_pair(std::vector<std::vector<int32_t>>(k, prompt),
                          std::vector<GenerateParams>(k, long_greedy()));
  };

  auto [six, six_p] = group(6);
  EXPECT_THROW(engine.submit_all(six, six_p), EngineBusy);
  EXPECT_EQ(engine.n_inflight(), 0);

  // An invalid member refuses the whole group.
  auto [bad, bad_p] = group(3);
  bad[1] = {};
  EXPECT_THROW(engine.submit_all(bad, bad_p), Error);
  EXPECT_EQ(engine.n_inflight(), 0);

  auto [five, five_p] = group(5);
  auto streams = engine.submit_all(five, five_p);
  ASSERT_EQ(streams.size(), 5u);
  EXPECT_EQ(engine.n_inflight(), 5);
  auto [two, two_p] = group(2);
  EXPECT_THROW(engine.submit_all(two, two_p), EngineBusy);
  EXPECT_EQ(engine.n_inflight(), 5);  // the refused group left nothing behind

  // A request is in flight until its stream is released: wait for each final update, then
  // let the streams go.
  for (auto& s : streams) engine.abort(s->id());
  for (auto& s : streams) EXPECT_TRUE(testing_util::read_to_end(*s));
  streams.clear();
  EXPECT_EQ(engine.n_inflight(), 0);
  auto [again, again_p] = group(5);
  EXPECT_EQ(engine.submit_all(again, again_p).size(), 5u);
}

}  // namespace
}  // namespace tessera
