// Tokenizer tests against llama.cpp's reference vectors (tests/data/tokenizer/*.inp/.out,
// produced upstream with the Hugging Face tokenizers of each model), plus round trips,
// Unicode text, special-token parsing and refusal of broken metadata.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "loader/gguf.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"

namespace tessera {
namespace {

const std::string kDir = std::string(TESSERA_TEST_DATA) + "/tokenizer/";

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct Case {
  std::string text;
  std::vector<int32_t> ids;
};

// Splits the .inp/.out pair the way llama.cpp's test-tokenizer-0 does: inputs are
// separated by "\n__ggml_vocab_test__\n" (the file ends with one), .out has one line of
// space-separated ids per input.
std::vector<Case> read_cases(const std::string& vocab) {
  const std::string inp = read_file(kDir + "ggml-vocab-" + vocab + ".gguf.inp");
  const std::string out = read_file(kDir + "ggml-vocab-" + vocab + ".gguf.out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  for (size_t pos = 0; pos < inp.size();) {
    const size_t next = inp.find(sep, pos);
    if (next == std::string::npos) {
      texts.push_back(inp.substr(pos));
      break;
    }
    texts.push_back(inp.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::vector<Case> cases;
  std::istringstream lines(out);
  std::string line;
  for (size_t i = 0; std::getline(lines, line); ++i) {
    if (i >= texts.size()) throw std::runtime_error("more .out lines than .inp cases");
    Case c{texts[i], {}};
    std::istringstream ids(line);
    for (int32_t id; ids >> id;) c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  if (cases.size() != texts.size()) throw std::runtime_error(".inp/.out case counts differ");
  return cases;
}

struct Loaded {
  std::unique_ptr<gguf::File> file;
  std::unique_ptr<Tokenizer> tok;
};

Loaded load(const std::string& vocab) {
  Loaded l;
  l.file = gguf::File::open(kDir + "ggml-vocab-" + vocab + ".gguf");
  l.tok = Tokenizer::from_gguf(*l.file);
  return l;
}

std::string ids_str(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += std::to_string(id) + " ";
  return s;
}

struct VocabParam {
  const char* name;
  const char* kind;
  bool round_trip;  // decode(encode(x)) reproduces x for every case
};

void PrintTo(const VocabParam& p, std::ostream* os) {
  *os << p.name;
}

class VocabVectors : public ::testing::TestWithParam<VocabParam> {};

TEST_P(VocabVectors, AllReferenceCasesMatch) {
  const VocabParam p = GetParam();
  Loaded l = load(p.name);
  EXPECT_STREQ(l.tok->kind(), p.kind);
  const std::vector<Case> cases = read_cases(p.name);
  ASSERT_EQ(cases.size(), 46u);
  size_t passed = 0;
  for (const Case& c : cases) {
    const std::vector<int32_t> got = l.tok->encode(c.text, false, false);
    if (got == c.ids) {
      ++passed;
    } else {
      ADD_FAILURE() << p.name << ": '" << c.text << "'\n  expected " << ids_str(c.ids)
                    << "\n  got      " << ids_str(got);
    }
  }
  std::printf("[ vectors  ] %-15s %zu/%zu cases match\n", p.name, passed, cases.size());
  EXPECT_EQ(passed, cases.size());
}

TEST_P(VocabVectors, DecodeOfEncodeRoundTrips) {
  const VocabParam p = GetParam();
  if (!p.round_trip) GTEST_SKIP() << p.name << " does not preserve all input text";
  Loaded l = load(p.name);
  // SPM adds the "▁" space prefix to the start of the text.
  const std::string prefix = std::string(p.kind) == "spm" ? " " : "";
  std::vector<std::string> texts;
  for (const Case& c : read_cases(p.name)) texts.push_back(c.text);
  for (
      const char* extra : {
          "日本語のテキストと中文文本，还有한국어.",  // CJK + Hangul
          "🦙🚀 family: 👨‍👩‍👧‍👦 flags: 🇩🇪🇯🇵 skin: 👋🏽",  // emoji, ZWJ, flags, modifiers
          "cafe\xCC\x81 n\xCC\x83 a\xCC\x8A\xCC\x81 \xE0\xA4\xA8\xE0\xA4\xBF",  // combining marks
          "tabs\tand\r\nCRLF\n\n  trailing  ",
      }) {
    texts.push_back(extra);
  }
  for (const std::string& t : texts) {
    const std::string want = t.empty() ? t : prefix + t;
    EXPECT_EQ(l.tok->decode(l.tok->encode(t, false, false)), want) << p.name;
  }
}

INSTANTIATE_TEST_SUITE_P(
    LlamaCpp, VocabVectors,
    ::testing::Values(VocabParam{"llama-spm", "spm", true}, VocabParam{"phi-3", "spm", true},
                      VocabParam{"gpt-2", "bpe", true}, VocabParam{"starcoder", "bpe", true},
                      VocabParam{"falcon", "bpe", true}, VocabParam{"deepseek-coder", "bpe", true},
                      VocabParam{"deepseek-llm", "bpe", true}, VocabParam{"mpt", "bpe", true},
                      VocabParam{"refact", "bpe", true}, VocabParam{"bert-bge", "wpm", false}),
    [](const ::testing::TestParamInfo<VocabParam>& i) {
      std::string n = i.param.name;
      for (char& c : n) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
      return n;
    });

// ---- metadata, defaults and end-of-generation ----

TEST(TokenizerMeta, SpmVocabFlagsAndIds) {
  Loaded l = load("llama-spm");
  const Tokenizer& t = *l.tok;
  EXPECT_EQ(t.n_vocab(), 32000);
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_id(), 2);
  EXPECT_EQ(t.unk_id(), 0);
  EXPECT_TRUE(t.add_bos());
  EXPECT_FALSE(t.add_eos());
  EXPECT_TRUE(t.is_eog(2));
  EXPECT_FALSE(t.is_eog(1));
  EXPECT_EQ(t.token_text(1), "<s>");
  EXPECT_EQ(t.token_type(1), TokenType::CONTROL);
  // add_special puts BOS first; the rest equals the plain encoding.
  const std::vector<int32_t> plain = t.encode("Hello world", false, false);
  std::vector<int32_t> with_bos = t.encode("Hello world", true, false);
  ASSERT_FALSE(with_bos.empty());
  EXPECT_EQ(with_bos.front(), 1);
  with_bos.erase(with_bos.begin());
  EXPECT_EQ(with_bos, plain);
  EXPECT_EQ(t.encode("", true, false), std::vector<int32_t>{1});
  EXPECT_TRUE(t.encode("", false, false).empty());
}

TEST(TokenizerMeta, Phi3EndOfGenerationSet) {
  Loaded l = load("phi-3");
  const Tokenizer& t = *l.tok;
  const int32_t end = t.find_token("<|end|>");
  const int32_t eot = t.find_token("<|endoftext|>");
  const int32_t s_end = t.find_token("</s>");
  ASSERT_GE(end, 0);
  EXPECT_EQ(t.eos_id(), 32000);
  EXPECT_TRUE(t.is_eog(eot));
  EXPECT_TRUE(t.is_eog(end));
  EXPECT_TRUE(t.is_eog(s_end));
  EXPECT_FALSE(t.is_eog(t.find_token("<|assistant|>")));
  // </s> is USER_DEFINED in the file; as an end-of-generation token it becomes CONTROL.
  EXPECT_EQ(t.token_type(s_end), TokenType::CONTROL);
}

TEST(TokenizerMeta, BpeDefaults) {
  Loaded l = load("starcoder");
  EXPECT_EQ(l.tok->pre(), "starcoder");
  EXPECT_FALSE(l.tok->add_bos());
  EXPECT_EQ(l.tok->bos_id(), 0);
  Loaded g = load("gpt-2");
  EXPECT_EQ(g.tok->eos_id(), 50256);
  EXPECT_TRUE(g.tok->is_eog(50256));
  EXPECT_EQ(g.tok->encode("Hi", true, false), g.tok->encode("Hi", false, false));  // no BOS
}

// ---- special tokens ----

TEST(TokenizerSpecial, BpeControlTokensOnlyWithParseSpecial) {
  Loaded l = load("gpt-2");
  const Tokenizer& t = *l.tok;
  const std::string text = "Hello<|endoftext|> world";
  std::vector<int32_t> want = t.encode("Hello", false, false);
  want.push_back(50256);
  for (int32_t id : t.encode(" world", false, false)) want.push_back(id);
  EXPECT_EQ(t.encode(text, false, true), want);
  const std::vector<int32_t> raw = t.encode(text, false, false);
  EXPECT_EQ(std::count(raw.begin(), raw.end(), 50256), 0);
  EXPECT_EQ(t.decode(raw), text);
  // Control tokens are hidden in output unless asked for.
  EXPECT_EQ(t.token_to_piece(50256), "");
  EXPECT_EQ(t.token_to_piece(50256, true), "<|endoftext|>");
  EXPECT_EQ(t.decode(t.encode(text, false, true)), "Hello world");
  EXPECT_EQ(t.decode(t.encode(text, false, true), true), text);
}

TEST(TokenizerSpecial, SpmSpacePrefixAfterSpecialToken) {
  Loaded l = load("llama-spm");
  const Tokenizer& t = *l.tok;
  // Text after a special token gets the "▁" prefix again, as at the start of input.
  std::vector<int32_t> want = {1};
  for (int32_t id : t.encode("Hi", false, false)) want.push_back(id);
  want.push_back(2);
  for (int32_t id : t.encode("there", false, false)) want.push_back(id);
  EXPECT_EQ(t.encode("<s>Hi</s>there", false, true), want);
  EXPECT_EQ(t.token_to_piece(1), "");
  EXPECT_EQ(t.token_to_piece(1, true), "<s>");
}

TEST(TokenizerSpecial, Phi3StripsWhitespaceAfterSpecialTokens) {
  Loaded l = load("phi-3");
  const Tokenizer& t = *l.tok;
  const int32_t user = t.find_token("<|user|>");
  const int32_t end = t.find_token("<|end|>");
  ASSERT_GE(user, 0);
  std::vector<int32_t> want = {user};
  for (int32_t id : t.encode("Hi", false, false)) want.push_back(id);
  want.push_back(end);
  EXPECT_EQ(t.encode("<|user|>\nHi<|end|>\n", false, true), want);
}

TEST(TokenizerSpecial, UserDefinedTokensMatchWithoutParseSpecial) {
  // mpt's vocabulary has user-defined runs of spaces; they are split out before BPE.
  Loaded l = load("mpt");
  const Tokenizer& t = *l.tok;
  const int32_t four = t.find_token("    ");
  ASSERT_GE(four, 0);
  EXPECT_EQ(t.token_type(four), TokenType::USER_DEFINED);
  const std::vector<int32_t> ids = t.encode("a    b", false, false);
  EXPECT_NE(std::find(ids.begin(), ids.end(), four), ids.end()) << ids_str(ids);
}

// A small byte-level BPE vocabulary built in memory: single characters, a few merges and
// two control tokens where one contains the other.
VocabData tiny_bpe() {
  VocabData v;
  v.model = "gpt2";
  v.pre = "gpt-2";
  v.tokens = {"a", "b", "c", "ab", "abc", "Ġ", "Ġa", "<x>", "<x><y>", "<y>", "!"};
  v.types = {1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 1};
  v.merges = {"a b", "ab c", "Ġ a"};
  return v;
}

TEST(TokenizerSpecial, LongestSpecialTokenWins) {
  auto t = Tokenizer::from_vocab(tiny_bpe());
  EXPECT_EQ(t->encode("abc<x><y>a", false, true), (std::vector<int32_t>{4, 8, 0}));
  EXPECT_EQ(t->encode("<y><x>", false, true), (std::vector<int32_t>{9, 7}));
  EXPECT_EQ(t->encode("ab a", false, false), (std::vector<int32_t>{3, 6}));
}

TEST(TokenizerBpe, MergesFollowRankNotLength) {
  VocabData v = tiny_bpe();
  // With "b c" ranked before "a b", "abc" must become a + bc.
  v.tokens.push_back("bc");
  v.types.push_back(1);
  v.merges = {"b c", "a b", "ab c"};
  auto t = Tokenizer::from_vocab(v);
  EXPECT_EQ(t->encode("abc", false, false), (std::vector<int32_t>{0, 11}));
}

TEST(TokenizerSpm, GreedyMergeByScoreAndByteFallback) {
  VocabData v;
  v.model = "llama";
  v.tokens = {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a",      "b",
              "c",     "ab",  "bc",   "<0x41>",       "<0xC3>", "<0xA9>"};
  v.scores = {0, 0, 0, -1, -1, -1, -1, -5, -2, 0, 0, 0};
  v.types = {2, 3, 3, 1, 1, 1, 1, 1, 1, 6, 6, 6};
  auto t = Tokenizer::from_vocab(v);
  // "bc" scores higher than "ab": a + bc.
  EXPECT_EQ(t->encode("abc", false, false), (std::vector<int32_t>{3, 4, 8}));
  // 'A' and 'é' are not tokens: their UTF-8 bytes are emitted as byte tokens.
  EXPECT_EQ(t->encode("A\xC3\xA9", false, false), (std::vector<int32_t>{3, 9, 10, 11}));
  EXPECT_EQ(t->decode({3, 9, 10, 11}), " A\xC3\xA9");
  EXPECT_EQ(t->token_to_piece(10), "\xC3");  // a partial UTF-8 sequence
  // No byte token for 'z': unknown.
  EXPECT_EQ(t->encode("z", false, false), (std::vector<int32_t>{3, 0}));
}

// ---- errors ----

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(TokenizerErrors, BrokenMetadataIsRefusedClearly) {
  auto msg = [](VocabData v) { return error_of([&] { Tokenizer::from_vocab(v); }); };
  VocabData v = tiny_bpe();
  v.model = "t5";  // Unigram: not implemented
  EXPECT_NE(msg(v).find("unsupported tokenizer model 't5'"), std::string::npos) << msg(v);
  v = tiny_bpe();
  v.pre = "no-such-pre";
  EXPECT_NE(msg(v).find("unknown pre-tokenizer"), std::string::npos) << msg(v);
  v = tiny_bpe();
  v.types.pop_back();
  EXPECT_NE(msg(v).find("token_type has 10 entries"), std::string::npos) << msg(v);
  v = tiny_bpe();
  v.scores = {1.0f, 2.0f};
  EXPECT_NE(msg(v).find("scores has 2 entries"), std::string::npos) << msg(v);
  v = tiny_bpe();
  v.types[3] = 9;
  EXPECT_NE(msg(v).find("invalid token_type 9"), std::string::npos) << msg(v);
  v = tiny_bpe();
  v.eos_id = 11;
  EXPECT_NE(msg(v).find("eos_token_id = 11 is outside"), std::string::npos) << msg(v);
  v = tiny_bpe();
  v.bos_id = -3;
  EXPECT_NE(msg(v).find("bos_token_id = -3"), std::string::npos) << msg(v);
  v = tiny_bpe();
  v.add_bos = true;  // 11 tokens: the default BOS (11) is out of range, so there is none
  EXPECT_NE(msg(v).find("add_bos_token is true but there is no BOS"), std::string::npos) << msg(v);
  v = tiny_bpe();
  v.merges.clear();
  EXPECT_NE(msg(v).find("no tokenizer.ggml.merges"), std::string::npos) << msg(v);
  v = tiny_bpe();
  v.merges.push_back("nospace");
  EXPECT_NE(msg(v).find("merge 3"), std::string::npos) << msg(v);
  v = tiny_bpe();
  v.tokens[2] = "a";
  EXPECT_NE(msg(v).find("duplicate token 'a' at ids 0 and 2"), std::string::npos) << msg(v);
  v = tiny_bpe();
  v.tokens.clear();
  v.types.clear();
  EXPECT_NE(msg(v).find("tokens is missing or empty"), std::string::npos) << msg(v);
  auto t = Tokenizer::from_vocab(tiny_bpe());
  EXPECT_NE(error_of([&] { t->token_to_piece(99); }).find("outside the vocabulary"),
            std::string::npos);
}

// Minimal GGUF v3 image with the given string / string-array keys.
std::vector<uint8_t> gguf_image(const std::vector<std::pair<std::string, std::string>>& strs,
                                const std::string& int_array_key = "") {
  std::vector<uint8_t> b;
  auto put = [&](const void* p, size_t n) {
    b.insert(b.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
  };
  auto u32 = [&](uint32_t v) { put(&v, 4); };
  auto u64 = [&](uint64_t v) { put(&v, 8); };
  auto str = [&](const std::string& s) {
    u64(s.size());
    put(s.data(), s.size());
  };
  put("GGUF", 4);
  u32(3);
  u64(0);
  u64(strs.size() + (int_array_key.empty() ? 0 : 1));
  for (const auto& [k, v] : strs) {
    str(k);
    u32(8);  // STRING
    str(v);
  }
  if (!int_array_key.empty()) {
    str(int_array_key);
    u32(9);  // ARRAY
    u32(5);  // of INT32
    u64(2);
    u32(7);
    u32(8);
  }
  while (b.size() % 32 != 0) b.push_back(0);
  return b;
}

TEST(TokenizerErrors, GgufWithoutOrWithWrongTokenizerKeys) {
  auto from = [](const std::vector<uint8_t>& img) {
    return error_of([&] {
      auto f = gguf::File::from_buffer(img.data(), img.size());
      Tokenizer::from_gguf(*f);
    });
  };
  EXPECT_NE(from(gguf_image({{"general.name", "x"}})).find("no tokenizer.ggml.model"),
            std::string::npos);
  EXPECT_NE(from(gguf_image({{"tokenizer.ggml.model", "llama"}})).find("tokenizer.ggml.tokens"),
            std::string::npos);
  // tokens stored as integers: the reader's type check names the key.
  EXPECT_NE(from(gguf_image({{"tokenizer.ggml.model", "llama"}}, "tokenizer.ggml.tokens"))
                .find("tokenizer.ggml.tokens"),
            std::string::npos);
  EXPECT_NE(from(gguf_image({{"tokenizer.ggml.model", "t5"}})).find("'t5'"), std::string::npos);
  // A WordPiece vocabulary with no tokens.
  EXPECT_NE(from(gguf_image({{"tokenizer.ggml.model", "bert"}})).find("tokenizer.ggml.tokens"),
            std::string::npos);
}

TEST(TokenizerPre, EveryKnownPreTokenizerCompilesAndCoversInput) {
  const std::string text = "Hello, y'all! 3333 天～ 🦙\n\n  x\t";
  for (const std::string& name : PreTokenizer::known_names()) {
    PreTokenizer p(name);
    std::string joined;
    for (const std::string& w : p.split(text)) {
      EXPECT_FALSE(w.empty()) << name;
      joined += w;
    }
    EXPECT_EQ(joined, text) << name;
  }
}

// ---- real models ----

TEST(TokenizerModels, Stories260KOnceUponATime) {
  auto f = gguf::File::open(std::string(TESSERA_TEST_DATA) + "/stories260K-f32.gguf");
  auto t = Tokenizer::from_gguf(*f);
  EXPECT_STREQ(t->kind(), "spm");
  EXPECT_EQ(t->n_vocab(), 512);
  const std::vector<int32_t> ids = t->encode("Once upon a time", true, false);
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids[0], t->bos_id());
  EXPECT_EQ(ids[0], 1);
  std::string joined;
  for (size_t i = 1; i < ids.size(); ++i) {
    EXPECT_EQ(t->token_type(ids[i]), TokenType::NORMAL);
    joined += t->token_text(ids[i]);
  }
  EXPECT_EQ(joined,
            "\xE2\x96\x81Once\xE2\x96\x81upon\xE2\x96\x81"
            "a\xE2\x96\x81time");
  // Each piece boundary is one no merge could remove: no adjacent pair joins into a token.
  for (size_t i = 1; i + 1 < ids.size(); ++i) {
    EXPECT_LT(t->find_token(t->token_text(ids[i]) + t->token_text(ids[i + 1])), 0);
  }
  EXPECT_EQ(t->decode(ids), " Once upon a time");
}

TEST(TokenizerModels, SmolLM2IfPresent) {
  const char* env = std::getenv("TESSERA_SMOLLM2_GGUF");
  const std::string path =
      env ? env : std::string(TESSERA_TEST_DATA) + "/../../models/SmolLM2-135M-Instruct-Q4_1.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no " << path;
  auto f = gguf::File::open(path);
  auto t = Tokenizer::from_gguf(*f);
  EXPECT_STREQ(t->kind(), "bpe");
  EXPECT_EQ(t->pre(), "smollm");
  EXPECT_EQ(t->n_vocab(), 49152);
  const int32_t im_start = t->find_token("<|im_start|>");
  const int32_t im_end = t->find_token("<|im_end|>");
  ASSERT_GE(im_start, 0);
  ASSERT_GE(im_end, 0);
  EXPECT_TRUE(t->is_eog(im_end));
  const std::string chat = "<|im_start|>user\nWhat is 2+2? Über-naïve 日本 🦙<|im_end|>\n";
  const std::vector<int32_t> ids = t->encode(chat, false, true);
  EXPECT_EQ(ids.front(), im_start);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), im_end), 1);
  EXPECT_EQ(t->decode(ids, true), chat);
  // Digits are split one per token by the smollm pre-tokenizer.
  EXPECT_EQ(t->encode("2024", false, false).size(), 4u);
}

}  // namespace
}  // namespace tessera
