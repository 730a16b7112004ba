// WordPiece against Hugging Face: all-MiniLM-L6-v2's tokenizer.json on the 500 reference
// inputs of tests/data/embeddings (ids from transformers, scripts/gen_embedding_refs.py),
// truncation as sentence-transformers does it, the GGUF round trip of the vocabulary, and
// refusal of tokenizers it cannot reproduce. (llama.cpp's bert-bge vectors run in
// test_tokenizer_vocab.cpp.)
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file.h"
#include "embed/tokenize_inputs.h"
#include "loader/gguf.h"
#include "loader/hf_tokenizer.h"
#include "loader/memory_source.h"
#include "tokenizer/wordpiece.h"

namespace tessera {
namespace {

using nlohmann::json;
const std::string kData = TESSERA_TEST_DATA;

std::vector<std::string> sentences() {
  const std::string text = read_file(kData + "/embeddings/sentences.txt");
  std::vector<std::string> out;
  size_t pos = 0;
  for (size_t nl; (nl = text.find('\n', pos)) != std::string::npos; pos = nl + 1)
    out.push_back(text.substr(pos, nl - pos));
  return out;
}

VocabData minilm_vocab() {
  const std::string path = kData + "/tokenizer/minilm.tokenizer.json";
  return hf::vocab_from_tokenizer_json(json::parse(read_file(path)), path);
}

std::string ids_str(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += std::to_string(id) + " ";
  return s;
}

TEST(WordPiece, MiniLMIdsEqualHuggingFaceOnAllReferenceInputs) {
  auto tok = Tokenizer::from_vocab(minilm_vocab());
  ASSERT_STREQ(tok->kind(), "wpm");
  const json ref = json::parse(read_file(kData + "/embeddings/minilm.ids.json"));
  const std::vector<std::string> lines = sentences();
  ASSERT_EQ(lines.size(), 500u);
  ASSERT_EQ(ref["full"].size(), 500u);
  size_t same = 0, truncated_same = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto want = ref["full"][i].get<std::vector<int32_t>>();
    const std::vector<int32_t> got = tok->encode(lines[i], true, true);
    if (got == want)
      ++same;
    else
      ADD_FAILURE() << "line " << i + 1 << ": " << lines[i] << "\n  want " << ids_str(want)
                    << "\n  got  " << ids_str(got);
    // What the model sees: cut to sentence-transformers' 256 tokens, [SEP] kept.
    const std::string key = std::to_string(i);
    const auto st =
        ref["truncated"].contains(key) ? ref["truncated"][key].get<std::vector<int32_t>>() : want;
    if (tokenize_text(*tok, lines[i], 256, true).tokens == st) ++truncated_same;
    if (ref["truncated"].contains(key)) {
      EXPECT_THROW(tokenize_text(*tok, lines[i], 256, false), Error) << i;
    }
  }
  std::printf("[ wordpiece ] all-MiniLM-L6-v2: %zu/%zu ids equal, %zu/%zu truncated equal\n", same,
              lines.size(), truncated_same, lines.size());
  EXPECT_EQ(same, lines.size());
  EXPECT_EQ(truncated_same, lines.size());
  EXPECT_GE(ref["truncated"].size(), 25u);  // the long inputs do reach the limit
}

TEST(WordPiece, VocabularyRoundTripsThroughGgufKeys) {
  const VocabData v = minilm_vocab();
  gguf::MemorySource src("test");
  hf::write_vocab_metadata(v, src);
  // llama.cpp's conventions: phantom-space words, bare continuations, its key names.
  EXPECT_EQ(src.get_string("tokenizer.ggml.model").value_or(""), "bert");
  EXPECT_EQ(src.get_int("tokenizer.ggml.cls_token_id").value_or(-1), 101);
  EXPECT_EQ(src.get_int("tokenizer.ggml.seperator_token_id").value_or(-1), 102);
  EXPECT_EQ(src.get_int("tokenizer.ggml.unknown_token_id").value_or(-1), 100);
  EXPECT_EQ(src.get_int("tokenizer.ggml.bos_token_id").value_or(-1), 101);  // llama.cpp's BOS
  EXPECT_FALSE(src.get_int("tokenizer.ggml.eos_token_id"));
  const std::vector<std::string> toks = src.get_string_array("tokenizer.ggml.tokens");
  EXPECT_EQ(toks[7592], "\xE2\x96\x81hello");
  EXPECT_EQ(toks[2361], "p");  // "##p"
  EXPECT_EQ(toks[101], "[CLS]");
  auto a = Tokenizer::from_vocab(v);
  auto b = Tokenizer::from_gguf(src);
  for (const std::string& s : sentences())
    ASSERT_EQ(a->encode(s, true, true), b->encode(s, true, true)) << s;
}

TEST(WordPiece, EdgeCases) {
  auto tok = Tokenizer::from_vocab(minilm_vocab());
  const auto& wpm = static_cast<const WpmTokenizer&>(*tok);
  EXPECT_EQ(tok->encode("", true, true), (std::vector<int32_t>{101, 102}));
  EXPECT_EQ(tok->encode(" \t\n\u3000", true, true), (std::vector<int32_t>{101, 102}));
  EXPECT_TRUE(tok->encode("", false, true).empty());
  // Special-token text is a special token only when asked.
  EXPECT_EQ(tok->encode("[SEP]", false, true), std::vector<int32_t>{102});
  EXPECT_EQ(tok->encode("[SEP]", false, false).size(), 3u);  // "[", "sep", "]"
  // Words of more than 100 characters are [UNK]; 100 are still split into pieces.
  EXPECT_EQ(tok->encode(std::string(101, 'x'), false, true), std::vector<int32_t>{100});
  EXPECT_GT(tok->encode(std::string(100, 'x'), false, true).size(), 1u);
  EXPECT_EQ(wpm.pre_tokenize("Héllo,World! ﬁ 你好"),
            (std::vector<std::string>{"hello", ",", "world", "!", "ﬁ", "你", "好"}));
  // Invalid UTF-8 bytes read as U+FFFD, which BERT's normalizer drops.
  EXPECT_EQ(tok->encode("a\xff"
                        "b",
                        false, true),
            tok->encode("ab", false, true));
  EXPECT_EQ(tok->decode(tok->encode("hello world", true, true)), " hello world");
}

TEST(WordPiece, RefusesWhatItCannotReproduce) {
  json j = json::parse(read_file(kData + "/tokenizer/minilm.tokenizer.json"));
  json bad = j;
  bad["normalizer"] = {{"type", "NFKC"}};
  EXPECT_THROW(hf::vocab_from_tokenizer_json(bad, "t"), Error);
  bad = j;
  bad["pre_tokenizer"] = {{"type", "Whitespace"}};
  EXPECT_THROW(hf::vocab_from_tokenizer_json(bad, "t"), Error);
  bad = j;
  bad["model"]["continuing_subword_prefix"] = "@@";
  EXPECT_THROW(hf::vocab_from_tokenizer_json(bad, "t"), Error);
  // A vocabulary without [UNK].
  VocabData v;
  v.model = "bert";
  v.tokens = {"[CLS]", "[SEP]",
              "\xE2\x96\x81"
              "a"};
  v.types = {3, 3, 1};
  EXPECT_THROW(Tokenizer::from_vocab(v), Error);
  v.tokens.push_back("[UNK]");
  v.types.push_back(3);
  v.cls_id = 7;  // outside the vocabulary
  EXPECT_THROW(Tokenizer::from_vocab(v), Error);
  v.cls_id = 0;
  v.sep_id = 1;
  auto tok = Tokenizer::from_vocab(v);
  EXPECT_EQ(tok->encode("a b", true, true), (std::vector<int32_t>{0, 2, 3, 1}));
}

}  // namespace
}  // namespace tessera
