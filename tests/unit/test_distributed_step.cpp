// Serving across ranks: the step message (serialize / parse, malformed ones refused), the
// chunks it carries from rank 0's runner to a worker's, the watchdog that bounds a step, and
// an engine whose steps run on two in-process ranks (stories260K split in two, exact mode)
// giving one process's greedy tokens, with preemption and the prefix cache at work.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "core/error.h"
#include "dist/step_channel.h"
#include "dist/watchdog.h"
#include "engine/distributed_step.h"
#include "engine/engine.h"
#include "models/model.h"
#include "thread_communicator.h"

namespace tessera {
namespace {

using dist::StepChunk;
using dist::StepMessage;

StepMessage two_chunk_message() {
  StepMessage m;
  StepChunk a;
  a.start = 0;
  a.n_new = 3;
  a.n_prompt = 3;
  a.out_begin = 2;
  a.out_end = 3;
  a.tokens = {1, 7, 9};
  a.blocks = {4};
  StepChunk b;
  b.start = 17;
  b.n_new = 1;
  b.n_prompt = 5;
  b.out_begin = 17;
  b.out_end = 18;
  b.tokens = {42};
  b.blocks = {0, 2};
  m.chunks = {a, b};
  return m;
}

void expect_same(const StepMessage& x, const StepMessage& y) {
  EXPECT_EQ(x.kind, y.kind);
  ASSERT_EQ(x.chunks.size(), y.chunks.size());
  for (size_t i = 0; i < x.chunks.size(); ++i) {
    const StepChunk &a = x.chunks[i], &b = y.chunks[i];
    EXPECT_EQ(a.start, b.start);
    EXPECT_EQ(a.n_new, b.n_new);
    EXPECT_EQ(a.n_prompt, b.n_prompt);
    EXPECT_EQ(a.out_begin, b.out_begin);
    EXPECT_EQ(a.out_end, b.out_end);
    EXPECT_EQ(a.tokens, b.tokens);
    EXPECT_EQ(a.blocks, b.blocks);
  }
}

TEST(StepMessage, RoundTrips) {
  const StepMessage m = two_chunk_message();
  const std::vector<int32_t> w = m.serialize();
  expect_same(StepMessage::parse(w.data(), w.size()), m);

  StepMessage stop;
  stop.kind = StepMessage::Kind::STOP;
  const std::vector<int32_t> s = stop.serialize();
  const StepMessage back = StepMessage::parse(s.data(), s.size());
  EXPECT_EQ(back.kind, StepMessage::Kind::STOP);
  EXPECT_TRUE(back.chunks.empty());
}

TEST(StepMessage, MalformedMessagesAreRefused) {
  const std::vector<int32_t> w = two_chunk_message().serialize();
  // Every shorter prefix is cut short, and one more word is trailing.
  for (size_t n = 0; n < w.size(); ++n)
    EXPECT_THROW(StepMessage::parse(w.data(), n), Error) << n << " words";
  std::vector<int32_t> longer = w;
  longer.push_back(0);
  EXPECT_THROW(StepMessage::parse(longer.data(), longer.size()), Error);

  auto edited = [&](size_t i, int32_t v) {
    std::vector<int32_t> x = w;
    x[i] = v;
    return x;
  };
  for (const auto& [i, v] : std::vector<std::pair<size_t, int32_t>>{
           {0, 0x12345678},  // magic
           {1, 7},           // kind
           {2, -1},          // chunk count
           {3, -1},          // start
           {4, 0},           // n_new
           {8, 5},           // n_blocks: more than the words left
       }) {
    const std::vector<int32_t> x = edited(i, v);
    EXPECT_THROW(StepMessage::parse(x.data(), x.size()), Error) << "word " << i;
  }
  // Chunk 1's logits range [17, 18) moved past its positions [17, 18).
  StepMessage m = two_chunk_message();
  m.chunks[1].out_end = 19;
  const std::vector<int32_t> x = m.serialize();
  EXPECT_THROW(StepMessage::parse(x.data(), x.size()), Error);
  // A STOP carries no chunks.
  std::vector<int32_t> stop = {w[0], static_cast<int32_t>(StepMessage::Kind::STOP), 1};
  EXPECT_THROW(StepMessage::parse(stop.data(), stop.size()), Error);
}

TEST(StepMessage, CarriesRunnerChunks) {
  // Sequence 0: a prompt of 20 tokens computed from position 16 (blocks of 16: 2 used).
  std::vector<int32_t> seq0(20), seq1(40);
  for (int i = 0; i < 20; ++i) seq0[i] = 100 + i;
  for (int i = 0; i < 40; ++i) seq1[i] = 200 + i;
  const std::vector<int32_t> table0 = {5, 3, 9}, table1 = {1, 0, 7};
  std::vector<SeqChunk> chunks(2);
  chunks[0] = {seq0.data(), 16, 4, 20, table0.data(), 19, 20};
  chunks[1] = {seq1.data(), 39, 1, 30, table1.data(), 39, 40};

  const StepMessage m = step_message(chunks, 16);
  EXPECT_EQ(m.chunks[0].blocks, (std::vector<int32_t>{5, 3}));
  EXPECT_EQ(m.chunks[1].blocks, (std::vector<int32_t>{1, 0, 7}));
  EXPECT_EQ(m.chunks[0].tokens, (std::vector<int32_t>{116, 117, 118, 119}));
  const std::vector<int32_t> w = m.serialize();
  const StepMessage got = StepMessage::parse(w.data(), w.size());

  std::vector<std::vector<int32_t>> storage;
  const std::vector<SeqChunk> back = step_chunks(got, 16, 10, storage);
  ASSERT_EQ(back.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const SeqChunk &a = chunks[i], &b = back[i];
    EXPECT_EQ(b.start, a.start);
    EXPECT_EQ(b.n_new, a.n_new);
    EXPECT_EQ(b.n_prompt, a.n_prompt);
    EXPECT_EQ(b.out_begin, a.out_begin);
    EXPECT_EQ(b.out_end, a.out_end);
    for (int p = a.start; p < a.start + a.n_new; ++p) EXPECT_EQ(b.tokens[p], a.tokens[p]);
    for (int p = 0; p < a.start + a.n_new; ++p)
      EXPECT_EQ(b.block_table[p / 16], a.block_table[p / 16]);
  }
  // A block beyond the worker's pool, or a table short of the positions: refused.
  EXPECT_THROW(step_chunks(got, 16, 7, storage), Error);  // chunk 1 names block 7
  StepMessage shorter = got;
  shorter.chunks[1].blocks.pop_back();
  EXPECT_THROW(step_chunks(shorter, 16, 10, storage), Error);
}

TEST(StepChannel, BroadcastsFromRankZero) {
  std::vector<StepMessage> got(3);
  testing::run_ranks(3, [&](dist::Communicator& c) {
    auto ch = dist::make_step_channel(c);
    if (c.rank() == 0) {
      ch->send(two_chunk_message());
      StepMessage stop;
      stop.kind = StepMessage::Kind::STOP;
      ch->send(stop);
      return;
    }
    got[c.rank()] = ch->receive();
    EXPECT_EQ(ch->receive().kind, StepMessage::Kind::STOP);
  });
  expect_same(got[1], two_chunk_message());
  expect_same(got[2], two_chunk_message());
}

TEST(Watchdog, ExpiresOnlyWhenAStepOverstays) {
  std::atomic<int> expired{0};
  std::string message;
  {
    dist::Watchdog w(0.05, "rank 3", [&](const std::string& m) {
      message = m;
      ++expired;
    });
    for (int i = 0; i < 20; ++i) {  // steps well within the bound
      w.arm("a step");
      w.disarm();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_EQ(expired.load(), 0);
    w.arm("a forward step across the ranks");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (expired.load() == 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(expired.load(), 1);
  EXPECT_NE(message.find("rank 3: a forward step across the ranks did not complete within"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("--dist-timeout"), std::string::npos) << message;
}

const std::string kModel = std::string(TESSERA_TEST_DATA) + "/stories260K-f32.gguf";

std::vector<std::vector<int32_t>> ids_of(const std::vector<Engine::Result>& rs) {
  std::vector<std::vector<int32_t>> out;
  for (const Engine::Result& r : rs) {
    out.emplace_back();
    for (const GeneratedToken& g : r.tokens) out.back().push_back(g.token);
  }
  return out;
}

// Rank 0 runs the engine with its steps published; rank 1 runs them from the messages.
// A pool of 12 blocks of 16 tokens cannot hold eight sequences of up to 80 tokens (the
// scheduler preempts), and the prompts share a prefix (the cache hits).
TEST(DistributedStep, TwoRanksServeOneProcessTokens) {
  const char* texts[] = {"Once upon a time, there was a little girl named Lily who",
                         "Once upon a time, there was a little girl named Lily and",
                         "The little dog ran",
                         "Tom had a red ball",
                         "The sun was",
                         "Mom said",
                         "One day, a big",
                         "They played in the park and"};
  GenerateParams p;
  p.sampling.temperature = 0.0f;
  p.max_tokens = 60;
  p.ignore_eos = true;
  EngineConfig cfg;
  cfg.max_model_len = 80;
  cfg.block_size = 16;
  const ModelOptions one = {.n_threads = 1, .kv_cache_type = "f32"};
  auto single = load_model(kModel, one);
  std::vector<std::vector<int32_t>> prompts;
  for (const char* t : texts) prompts.push_back(single->tokenizer().encode(t, true, false));
  const ModelConfig& mc = single->config();
  cfg.kv_cache_bytes =
      static_cast<int64_t>(KVCache::bytes_per_token(mc.n_layer, mc.kv_dim(), DType::F32) * 16 * 12);
  std::vector<std::vector<int32_t>> want;
  {
    Engine e(*single, cfg);
    want = ids_of(e.generate(prompts, p));
  }

  std::vector<std::vector<int32_t>> got;
  EngineMetrics m;
  testing::run_ranks(2, [&](dist::Communicator& c) {
    ModelOptions mo = one;
    mo.comm = &c;
    mo.tp_exact = true;
    auto model = load_model(kModel, mo);
    auto channel = dist::make_step_channel(c);
    int32_t n_blocks = 0;
    if (c.rank() == 0) {
      StepPublisher publisher(*channel, cfg.block_size, 600.0);
      EngineConfig ec = cfg;
      ec.step_publisher = &publisher;
      {
        Engine e(*model, ec);
        n_blocks = e.metrics().kv_blocks_total;
        c.broadcast(&n_blocks, sizeof n_blocks, 0);
        got = ids_of(e.generate(prompts, p));
        m = e.metrics();
      }
      publisher.stop();
      return;
    }
    c.broadcast(&n_blocks, sizeof n_blocks, 0);
    auto kv = model->make_kv_cache(n_blocks, cfg.block_size);
    run_step_worker(*model, *kv, n_blocks, cfg.block_size, *channel, 600.0);
  });
  EXPECT_EQ(got, want);
  EXPECT_GT(m.preemptions_total, 0);
  EXPECT_GT(m.prefix_hit_tokens, 0);
}

TEST(DistributedStep, SpeculativeDecodingIsRefused) {
  auto model = load_model(kModel, {.n_threads = 1});
  dist::LocalCommunicator local;
  auto ch = dist::make_step_channel(local);
  StepPublisher publisher(*ch, 16, 600.0);
  EngineConfig cfg;
  cfg.kv_cache_bytes = 16 << 20;
  cfg.max_model_len = 64;
  cfg.step_publisher = &publisher;
  cfg.speculative.method = "ngram";
  try {
    Engine e(*model, cfg);
    FAIL() << "the engine started";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor parallelism"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tessera
