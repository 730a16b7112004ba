// BPE vectors for vocabularies llama.cpp ships only as test vectors (Llama 3, Qwen2): the
// vocabulary comes from the model's Hugging Face tokenizer.json, turned into VocabData
// the way GGUF converters do (added tokens: special -> CONTROL, others -> USER_DEFINED).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace tessera {
namespace {

const std::string kDir = std::string(TESSERA_TEST_DATA) + "/tokenizer/";

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

VocabData vocab_from_hf(const std::string& json_path, const std::string& pre) {
  const nlohmann::json j = nlohmann::json::parse(slurp(json_path));
  const nlohmann::json& model = j.at("model");
  VocabData v;
  v.model = "gpt2";
  v.pre = pre;
  size_t n = 0;
  for (const auto& [text, id] : model.at("vocab").items()) n = std::max(n, id.get<size_t>() + 1);
  for (const auto& a : j.at("added_tokens")) n = std::max(n, a.at("id").get<size_t>() + 1);
  v.tokens.resize(n);
  v.types.assign(n, static_cast<int32_t>(TokenType::UNUSED));
  for (const auto& [text, id] : model.at("vocab").items()) {
    v.tokens[id.get<size_t>()] = text;
    v.types[id.get<size_t>()] = static_cast<int32_t>(TokenType::NORMAL);
  }
  for (const auto& a : j.at("added_tokens")) {
    const size_t id = a.at("id").get<size_t>();
    v.tokens[id] = a.at("content").get<std::string>();
    v.types[id] = static_cast<int32_t>(a.at("special").get<bool>() ? TokenType::CONTROL
                                                                   : TokenType::USER_DEFINED);
  }
  for (size_t i = 0; i < n; ++i) {
    if (v.tokens[i].empty()) v.tokens[i] = "[PAD" + std::to_string(i) + "]";
  }
  for (const auto& m : model.at("merges")) {
    // Either "left right" or ["left", "right"], depending on the tokenizers version.
    v.merges.push_back(m.is_string()
                           ? m.get<std::string>()
                           : m.at(0).get<std::string>() + " " + m.at(1).get<std::string>());
  }
  return v;
}

struct Case {
  std::string text;
  std::vector<int32_t> ids;
};

// Same split rules as llama.cpp's test-tokenizer-0 (see test_tokenizer_vocab.cpp).
std::vector<Case> read_cases(const std::string& vocab) {
  const std::string inp = slurp(kDir + "ggml-vocab-" + vocab + ".gguf.inp");
  const std::string out = slurp(kDir + "ggml-vocab-" + vocab + ".gguf.out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  for (size_t pos = 0; pos < inp.size();) {
    const size_t next = inp.find(sep, pos);
    texts.push_back(inp.substr(pos, next == std::string::npos ? next : next - pos));
    if (next == std::string::npos) break;
    pos = next + sep.size();
  }
  std::vector<Case> cases;
  std::istringstream lines(out);
  std::string line;
  for (size_t i = 0; std::getline(lines, line) && i < texts.size(); ++i) {
    Case c{texts[i], {}};
    std::istringstream ids(line);
    for (int32_t id; ids >> id;) c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  if (cases.size() != texts.size()) throw std::runtime_error(".inp/.out case counts differ");
  return cases;
}

size_t count_matches(const Tokenizer& t, const std::string& vectors) {
  const std::vector<Case> cases = read_cases(vectors);
  size_t passed = 0;
  for (const Case& c : cases) {
    const std::vector<int32_t> got = t.encode(c.text, false, false);
    if (got == c.ids) {
      ++passed;
    } else {
      std::string g, w;
      for (int32_t id : got) g += std::to_string(id) + " ";
      for (int32_t id : c.ids) w += std::to_string(id) + " ";
      ADD_FAILURE() << vectors << ": '" << c.text << "'\n  expected " << w << "\n  got      " << g;
    }
    EXPECT_EQ(t.decode(got), c.text) << vectors;
  }
  std::printf("[ vectors  ] %-16s %zu/%zu cases match\n", vectors.c_str(), passed, cases.size());
  return cases.size() - passed;
}

TEST(TokenizerHf, Llama3Vectors) {
  auto t = Tokenizer::from_vocab(vocab_from_hf(kDir + "llama3.tokenizer.json", "llama-bpe"));
  EXPECT_TRUE(t->add_bos());  // the llama3 pre-tokenizer implies BOS by default
  EXPECT_TRUE(t->is_eog(t->find_token("<|eot_id|>")));
  EXPECT_EQ(count_matches(*t, "llama-bpe"), 0u);
}

TEST(TokenizerHf, Qwen2Vectors) {
  auto t = Tokenizer::from_vocab(vocab_from_hf(kDir + "qwen3.tokenizer.json", "qwen2"));
  EXPECT_TRUE(t->is_eog(t->find_token("<|im_end|>")));
  EXPECT_EQ(count_matches(*t, "qwen2"), 0u);
  auto r1 = Tokenizer::from_vocab(vocab_from_hf(kDir + "qwen3.tokenizer.json", "deepseek-r1-qwen"));
  EXPECT_EQ(count_matches(*r1, "deepseek-r1-qwen"), 0u);
}

}  // namespace
}  // namespace tessera
