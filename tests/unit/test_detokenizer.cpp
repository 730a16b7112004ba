// Incremental detokenizer with real vocabularies: stories260K (SentencePiece, 512 tokens,
// so most non-ASCII characters become byte-fallback tokens split across several ids) and
// GPT-2 (byte-level BPE, where one character's bytes can also straddle tokens).
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "loader/gguf.h"
#include "tokenizer/detokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace tessera {
namespace {

std::unique_ptr<Tokenizer> load(const std::string& rel) {
  auto f = gguf::File::open(std::string(TESSERA_TEST_DATA) + "/" + rel);
  return Tokenizer::from_gguf(*f);
}

const Tokenizer& stories() {
  static std::unique_ptr<Tokenizer> t = load("stories260K-f32.gguf");
  return *t;
}

const Tokenizer& gpt2() {
  static std::unique_ptr<Tokenizer> t = load("tokenizer/ggml-vocab-gpt-2.gguf");
  return *t;
}

bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = s[i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

struct Output {
  std::vector<std::string> chunks;  // what feed() returned, token by token
  std::string text;                 // everything returned, flush included
};

Output detokenize(const Tokenizer& tok, const std::vector<int32_t>& ids,
                  std::vector<std::string> stop, Detokenizer** keep = nullptr) {
  static std::unique_ptr<Detokenizer> d;
  d = std::make_unique<Detokenizer>(tok, std::move(stop));
  Output r;
  for (int32_t id : ids) {
    r.chunks.push_back(d->feed(id));
    r.text += r.chunks.back();
  }
  r.text += d->flush();
  if (keep) *keep = d.get();
  return r;
}

// Ids of `text` without BOS (generated tokens never include it).
std::vector<int32_t> ids_of(const Tokenizer& tok, const std::string& text) {
  return tok.encode(text, /*add_special=*/false, /*parse_special=*/false);
}

TEST(Detokenizer, MultiByteCharactersSplitAcrossTokensComeOutWhole) {
  const std::string text = "Grüße, 世界! Café 🙂 done";
  for (const Tokenizer* tok : {&stories(), &gpt2()}) {
    const std::vector<int32_t> ids = ids_of(*tok, text);
    // Precondition: some character really is split (a piece that is not valid UTF-8).
    int n_partial = 0;
    for (int32_t id : ids) n_partial += !valid_utf8(tok->token_to_piece(id));
    ASSERT_GT(n_partial, 0) << tok->kind();

    const Output r = detokenize(*tok, ids, {});
    EXPECT_EQ(r.text, tok->decode(ids)) << tok->kind();
    for (const std::string& c : r.chunks) EXPECT_TRUE(valid_utf8(c)) << tok->kind() << ": " << c;
  }
}

TEST(Detokenizer, StopStringSplitAcrossTokensIsCutAndNeverEmitted) {
  const Tokenizer& tok = stories();
  const std::vector<int32_t> ids = ids_of(tok, "Once upon a time, there was a little girl.");
  const std::string stop = "a time";
  // Precondition: no single token holds the stop string.
  for (int32_t id : ids) ASSERT_EQ(tok.token_to_piece(id).find(stop), std::string::npos);

  Detokenizer* d = nullptr;
  const Output r = detokenize(tok, ids, {"never", stop}, &d);
  EXPECT_EQ(r.text, " Once upon ");
  EXPECT_TRUE(d->stopped());
  EXPECT_EQ(d->matched_stop(), stop);
  // n_tokens() is the token that completed the stop string: its prefix decodes past it.
  const std::vector<int32_t> head(ids.begin(), ids.begin() + d->n_tokens());
  const std::vector<int32_t> shorter(ids.begin(), ids.begin() + d->n_tokens() - 1);
  EXPECT_NE(tok.decode(head).find(stop), std::string::npos);
  EXPECT_EQ(tok.decode(shorter).find(stop), std::string::npos);
  EXPECT_LT(d->n_tokens(), static_cast<int>(ids.size()));
  // Tokens after the stop are ignored.
  EXPECT_EQ(d->feed(ids.back()), "");
}

TEST(Detokenizer, PossibleStopPrefixIsHeldThenReleased) {
  const Tokenizer& tok = stories();
  const std::vector<int32_t> ids = ids_of(tok, "Once upon a time, there was a dog.");
  const Output r = detokenize(tok, ids, {"time to go"});
  EXPECT_EQ(r.text, tok.decode(ids));  // no match: everything comes out
  // While " time" could still become "time to go", it is held back: no chunk ends with
  // "tim"/"time" and the text "time" arrives together with what ruled the match out.
  std::string so_far;
  for (const std::string& c : r.chunks) {
    so_far += c;
    EXPECT_FALSE(so_far.size() >= 4 && so_far.compare(so_far.size() - 4, 4, "time") == 0) << so_far;
  }
  EXPECT_NE(so_far.find("time,"), std::string::npos);
}

TEST(Detokenizer, MultiByteStopStringAcrossByteTokens) {
  for (const Tokenizer* tok : {&stories(), &gpt2()}) {
    const std::vector<int32_t> ids = ids_of(*tok, "Hello 世界 and more");
    Detokenizer* d = nullptr;
    const Output r = detokenize(*tok, ids, {"界"}, &d);
    EXPECT_TRUE(d->stopped()) << tok->kind();
    EXPECT_EQ(r.text, tok->decode(ids).substr(0, tok->decode(ids).find("界"))) << tok->kind();
    for (const std::string& c : r.chunks) EXPECT_TRUE(valid_utf8(c)) << tok->kind();
  }
}

TEST(Detokenizer, EarliestStopWinsAndFlushReturnsHeldPrefix) {
  const Tokenizer& tok = gpt2();
  Detokenizer* d = nullptr;
  Output r = detokenize(tok, ids_of(tok, "one two three four"), {"four", "two"}, &d);
  EXPECT_EQ(r.text, "one ");
  EXPECT_EQ(d->matched_stop(), "two");

  // The text ends on a possible stop prefix: flush() hands it over.
  const std::vector<int32_t> ids = ids_of(tok, "one two thr");
  r = detokenize(tok, ids, {"three"}, &d);
  EXPECT_FALSE(d->stopped());
  EXPECT_EQ(r.text, "one two thr");
  EXPECT_EQ(r.chunks.back().find("thr"), std::string::npos);
}

TEST(Detokenizer, DanglingIncompleteSequenceIsFlushedAsBytes) {
  const Tokenizer& tok = stories();
  // The first byte token of a 3-byte character alone (SPM may put a space token first).
  const std::vector<int32_t> ids = ids_of(tok, "世");
  size_t k = 0;
  while (k < ids.size() && valid_utf8(tok.token_to_piece(ids[k]))) ++k;
  ASSERT_LT(k + 1, ids.size());  // a lead byte token followed by continuation bytes
  const std::string lead = tok.token_to_piece(ids[k]);
  ASSERT_EQ(lead.size(), 1u);
  Detokenizer d(tok, {});
  EXPECT_EQ(d.feed(ids[k]), "");
  const std::string rest = d.flush();
  EXPECT_EQ(rest, lead);
  EXPECT_EQ(utf8_complete_prefix(rest), 0u);
}

TEST(Detokenizer, EmptyStopStringsAreIgnored) {
  const Tokenizer& tok = gpt2();
  Detokenizer* d = nullptr;
  const Output r = detokenize(tok, ids_of(tok, "abc def"), {"", ""}, &d);
  EXPECT_FALSE(d->stopped());
  EXPECT_EQ(r.text, "abc def");
}

}  // namespace
}  // namespace tessera
