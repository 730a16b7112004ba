// Constrained decoding through the engine on a real model (stories260K): every output is
// in the grammar's language, generation ends when the grammar is complete, batched and
// preempted runs agree with one-at-a-time runs, and a grammar that cannot finish within
// max_tokens ends with "length" on a valid prefix.
#include <gtest/gtest.h>

#include <regex>

#include "engine/engine.h"
#include "models/model.h"
#include "structured/regex.h"
#include "structured/token_mask.h"

namespace tessera {
namespace {

const std::string kModel = std::string(TESSERA_TEST_DATA) + "/stories260K-f32.gguf";

std::shared_ptr<const structured::CompiledGrammar> regex_grammar(const Tokenizer& tok,
                                                                 const std::string& re) {
  auto vocab = std::make_shared<const structured::TokenVocab>(tok);
  return std::make_shared<structured::CompiledGrammar>(
      structured::parse_gbnf(structured::regex_to_gbnf(re)), vocab);
}

std::string text_of(const Tokenizer& tok, const Engine::Result& r) {
  std::vector<int32_t> ids;
  for (const auto& g : r.tokens) ids.push_back(g.token);
  return tok.decode(ids);
}

TEST(EngineGrammar, OutputsMatchAndEndWhenComplete) {
  auto model = load_model(kModel, {.n_threads = 2});
  const Tokenizer& tok = model->tokenizer();
  EngineConfig cfg;
  cfg.kv_cache_bytes = int64_t{2} << 20;  // small: some sequences get preempted
  cfg.max_model_len = 128;
  Engine engine(*model, cfg);
  const std::string re = " ?(The|A) (big |little )*(cat|dog|bird) (ran|sat|sang)\\.";
  GenerateParams p;
  p.max_tokens = 40;
  p.sampling.temperature = 1.0f;
  p.sampling.has_seed = true;
  p.sampling.seed = 3;
  p.grammar = regex_grammar(tok, re);
  std::vector<std::vector<int32_t>> prompts;
  for (const char* t : {"Once upon a time", "The little dog", "Lily and Ben", "One day"})
    for (int k = 0; k < 3; ++k) prompts.push_back(tok.encode(t, true, false));
  const auto together = engine.generate(prompts, p);
  const std::regex full(re);
  for (size_t i = 0; i < prompts.size(); ++i) {
    const std::string text = text_of(tok, together[i]);
    EXPECT_EQ(together[i].finish, RequestStatus::FINISHED_STOPPED) << text;
    EXPECT_TRUE(std::regex_match(text, full)) << "'" << text << "'";
    // Alone, the same seed gives the same text.
    const auto alone = engine.generate({prompts[i]}, p);
    EXPECT_EQ(text_of(tok, alone[0]), text);
  }
}

TEST(EngineGrammar, LengthCutLeavesAValidPrefixAndLogprobsWork) {
  auto model = load_model(kModel, {.n_threads = 2});
  const Tokenizer& tok = model->tokenizer();
  EngineConfig cfg;
  cfg.kv_cache_bytes = int64_t{4} << 20;
  cfg.max_model_len = 128;
  Engine engine(*model, cfg);
  GenerateParams p;
  p.max_tokens = 6;
  p.sampling.temperature = 0.0f;
  p.logprobs = 3;
  p.grammar = regex_grammar(tok, "(ab|c){30}");
  const auto r = engine.generate({tok.encode("Once", true, false)}, p);
  EXPECT_EQ(r[0].finish, RequestStatus::FINISHED_LENGTH);
  const std::string text = text_of(tok, r[0]);
  EXPECT_TRUE(std::regex_match(text, std::regex("(ab|c)*a?"))) << text;
  for (const auto& g : r[0].tokens) EXPECT_EQ(g.top.size(), 3u);
}

}  // namespace
}  // namespace tessera
