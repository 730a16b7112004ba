// BPE vectors for vocabularies llama.cpp ships only as test vectors (Llama 3, Qwen2): the
// vocabulary comes from the model's Hugging Face tokenizer.json through hf_tokenizer
// (pre-tokenizer recognised from its Split regex; added tokens: special -> CONTROL, others
// -> USER_DEFINED). GPT-2's original encoder.json + vocab.bpe, and a SentencePiece-style
// tokenizer.json rebuilt from llama.cpp's llama-spm vocabulary, against their vectors too.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "loader/gguf.h"
#include "loader/hf_tokenizer.h"
#include "loader/memory_source.h"
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

VocabData vocab_from_hf(const std::string& json_path) {
  return hf::vocab_from_tokenizer_json(nlohmann::json::parse(slurp(json_path)), json_path);
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
    // (SentencePiece adds the "▁" prefix, which decodes as a leading space.)
    const std::string prefix = std::string(t.kind()) == "spm" && !c.text.empty() ? " " : "";
    EXPECT_EQ(t.decode(got), prefix + c.text) << vectors;
  }
  std::printf("[ vectors  ] %-16s %zu/%zu cases match\n", vectors.c_str(), passed, cases.size());
  return cases.size() - passed;
}

TEST(TokenizerHf, Llama3Vectors) {
  const VocabData v = vocab_from_hf(kDir + "llama3.tokenizer.json");
  EXPECT_EQ(v.pre, "llama-bpe");
  auto t = Tokenizer::from_vocab(v);
  EXPECT_TRUE(t->add_bos());  // the llama3 pre-tokenizer implies BOS by default
  EXPECT_TRUE(t->is_eog(t->find_token("<|eot_id|>")));
  EXPECT_EQ(count_matches(*t, "llama-bpe"), 0u);
}

TEST(TokenizerHf, Qwen2Vectors) {
  VocabData v = vocab_from_hf(kDir + "qwen3.tokenizer.json");
  EXPECT_EQ(v.pre, "qwen2");
  auto t = Tokenizer::from_vocab(v);
  EXPECT_TRUE(t->is_eog(t->find_token("<|im_end|>")));
  EXPECT_EQ(count_matches(*t, "qwen2"), 0u);
  v.pre = "deepseek-r1-qwen";
  auto r1 = Tokenizer::from_vocab(v);
  EXPECT_EQ(count_matches(*r1, "deepseek-r1-qwen"), 0u);
}

TEST(TokenizerHf, Gpt2OriginalFiles) {
  const VocabData v =
      hf::vocab_from_gpt2_files(kDir + "gpt2.encoder.json", kDir + "gpt2.vocab.bpe");
  EXPECT_EQ(v.tokens.size(), 50257u);
  EXPECT_EQ(v.merges.size(), 50000u);
  auto t = Tokenizer::from_vocab(v);
  EXPECT_EQ(t->eos_id(), 50256);
  EXPECT_EQ(count_matches(*t, "gpt-2"), 0u);
}

namespace fs = std::filesystem;

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("tessera_tok_" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
  }
};

// A directory as GPT-2's Hugging Face repository has it: vocab.json + merges.txt.
TEST(TokenizerHf, Gpt2Directory) {
  TempDir d;
  fs::copy_file(kDir + "gpt2.encoder.json", d.path / "vocab.json");
  fs::copy_file(kDir + "gpt2.vocab.bpe", d.path / "merges.txt");
  d.write("config.json", R"({"vocab_size": 50260, "bos_token_id": 50256, "eos_token_id": 50256})");
  const nlohmann::json cfg = nlohmann::json::parse(slurp((d.path / "config.json").string()));
  const VocabData v = hf::read_tokenizer_dir(d.path.string(), &cfg);
  EXPECT_EQ(v.tokens.size(), 50260u);  // padded to the embedding rows
  EXPECT_EQ(v.tokens[50259], "[PAD50259]");
  EXPECT_EQ(v.types[50259], static_cast<int32_t>(TokenType::UNUSED));
  auto t = Tokenizer::from_vocab(v);
  EXPECT_EQ(count_matches(*t, "gpt-2"), 0u);
}

// Llama 3 Instruct's layout: tokenizer_config says EOS is <|end_of_text|>, while
// generation_config.json lists <|end_of_text|>, <|eom_id|> and <|eot_id|>; all end generation.
TEST(TokenizerHf, GenerationConfigEosIdsEndGeneration) {
  TempDir d;
  fs::copy_file(kDir + "llama3.tokenizer.json", d.path / "tokenizer.json");
  fs::copy_file(kDir + "llama3.tokenizer_config.json", d.path / "tokenizer_config.json");
  d.write("generation_config.json",
          R"({"bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]})");
  const VocabData v = hf::read_tokenizer_dir(d.path.string(), nullptr);
  EXPECT_EQ(v.bos_id, 128000);
  EXPECT_EQ(v.eos_id, 128001);
  EXPECT_EQ(v.eog_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  gguf::MemorySource src("test");
  hf::write_vocab_metadata(v, src);
  auto t = Tokenizer::from_gguf(src);
  for (int32_t id : {128001, 128008, 128009}) EXPECT_TRUE(t->is_eog(id)) << id;
  EXPECT_FALSE(t->is_eog(128000));
  EXPECT_FALSE(hf::read_chat_template(d.path.string()).empty());
  EXPECT_EQ(t->encode("Hello", true, false), (std::vector<int32_t>{128000, 9906}));

  d.write("generation_config.json", R"({"eos_token_id": 999999})");
  EXPECT_THROW(hf::read_tokenizer_dir(d.path.string(), nullptr), Error);
}

// A SentencePiece-style tokenizer.json (BPE + byte_fallback + Metaspace normalizer), made
// from llama.cpp's llama-spm vocabulary the way Hugging Face's converter derives merges
// from a SentencePiece model: every split of a piece into two vocabulary pieces, ordered
// by the piece's score. Loading it back must give scores that tokenize like the original.
TEST(TokenizerHf, SentencePieceStyleTokenizerJson) {
  auto f = gguf::File::open(kDir + "ggml-vocab-llama-spm.gguf");
  const std::vector<std::string> tokens = f->get_string_array("tokenizer.ggml.tokens");
  const std::vector<float> scores = f->get_float_array("tokenizer.ggml.scores");
  const std::vector<int64_t> types = f->get_int_array("tokenizer.ggml.token_type");
  nlohmann::json vocab = nlohmann::json::object(), added = nlohmann::json::array();
  std::map<std::string, int64_t> id_of;
  for (size_t i = 0; i < tokens.size(); ++i) {
    vocab[tokens[i]] = i;
    id_of[tokens[i]] = static_cast<int64_t>(i);
    if (types[i] == static_cast<int>(TokenType::CONTROL) ||
        types[i] == static_cast<int>(TokenType::UNKNOWN))
      added.push_back({{"id", i}, {"content", tokens[i]}, {"special", true}});
  }
  struct M {
    float score;
    int64_t l, r;
    std::string a, b;
  };
  std::vector<M> ms;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (types[i] != static_cast<int>(TokenType::NORMAL)) continue;
    const std::string& t = tokens[i];
    for (size_t k = 1; k < t.size(); ++k) {
      if ((static_cast<unsigned char>(t[k]) & 0xC0) == 0x80) continue;  // inside a character
      auto a = id_of.find(t.substr(0, k)), b = id_of.find(t.substr(k));
      if (a != id_of.end() && b != id_of.end())
        ms.push_back({scores[i], a->second, b->second, a->first, b->first});
    }
  }
  std::stable_sort(ms.begin(), ms.end(), [](const M& x, const M& y) {
    return x.score != y.score ? x.score > y.score : (x.l != y.l ? x.l < y.l : x.r < y.r);
  });
  nlohmann::json merges = nlohmann::json::array();
  for (const M& m : ms) merges.push_back({m.a, m.b});  // the list form
  const nlohmann::json j = {
      {"added_tokens", added},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
          {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}}}}},
      {"pre_tokenizer", nullptr},
      {"model",
       {{"type", "BPE"},
        {"byte_fallback", true},
        {"unk_token", "<unk>"},
        {"vocab", vocab},
        {"merges", merges}}}};
  const VocabData v = hf::vocab_from_tokenizer_json(j, "spm.tokenizer.json");
  EXPECT_EQ(v.model, "llama");
  EXPECT_EQ(v.add_space_prefix, true);
  EXPECT_EQ(v.unk_id, 0);
  EXPECT_EQ(v.types[3], static_cast<int32_t>(TokenType::BYTE));  // <0x00>
  auto t = Tokenizer::from_vocab(v);
  EXPECT_STREQ(t->kind(), "spm");
  EXPECT_EQ(count_matches(*t, "llama-spm"), 0u);
}

TEST(TokenizerHf, MalformedTokenizerJson) {
  auto err = [](const std::string& text) -> std::string {
    try {
      hf::vocab_from_tokenizer_json(nlohmann::json::parse(text), "t.json");
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  const std::string bl = R"("pre_tokenizer": {"type": "ByteLevel"})";
  EXPECT_NE(err("{}").find("no \"model\""), std::string::npos);
  EXPECT_NE(
      err(R"({"model": {"type": "Unigram", "vocab": []}})").find("'Unigram' is not supported"),
      std::string::npos);
  EXPECT_NE(err(R"({"model": {"type": "BPE", "vocab": [], "merges": []}})")
                .find("vocab is not an object"),
            std::string::npos);
  EXPECT_NE(err("{" + bl + R"(, "model": {"type": "BPE", "vocab": {"a": "x"}, "merges": []}})")
                .find("not an integer"),
            std::string::npos);
  EXPECT_NE(
      err("{" + bl + R"(, "model": {"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []}})")
          .find("share id 0"),
      std::string::npos);
  EXPECT_NE(err("{" + bl + R"(, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": [1]}})")
                .find("merge 0"),
            std::string::npos);
  EXPECT_NE(err("{" + bl + R"(, "model": {"type": "BPE", "vocab": {"a": -4}, "merges": []}})")
                .find("out of range"),
            std::string::npos);
  EXPECT_NE(
      err(R"({"pre_tokenizer": {"type": "Whitespace"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})")
          .find("unrecognised pre-tokenizer Whitespace"),
      std::string::npos);
  EXPECT_NE(
      err("{" + bl +
          R"(, "added_tokens": [{"id": 1}], "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})")
          .find("added_tokens entry"),
      std::string::npos);
  // A well-formed one loads.
  EXPECT_EQ(
      err("{" + bl +
          R"(, "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}})"),
      "");
}

}  // namespace
}  // namespace tessera
