// The grammar engine: GBNF parsing, the pushdown matcher, and token masks (the cached fast
// path against the brute-force reference, on random states of random grammars).
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "structured/grammar.h"
#include "structured/sequence_grammar.h"
#include "structured/token_mask.h"

using namespace tessera::structured;

namespace {

bool matches(const std::string& gbnf, const std::string& text) {
  auto vocab = std::make_shared<TokenVocab>(std::vector<std::string>{"x"}, std::vector<int32_t>{});
  auto cg = std::make_shared<CompiledGrammar>(parse_gbnf(gbnf), vocab);
  GrammarMatcher m(cg);
  return m.accept_bytes(text) && m.accepting();
}

bool prefix_ok(const std::string& gbnf, const std::string& text) {
  auto vocab = std::make_shared<TokenVocab>(std::vector<std::string>{"x"}, std::vector<int32_t>{});
  auto cg = std::make_shared<CompiledGrammar>(parse_gbnf(gbnf), vocab);
  GrammarMatcher m(cg);
  return m.accept_bytes(text);
}

std::string error_of(const std::string& gbnf) {
  try {
    parse_gbnf(gbnf);
  } catch (const GrammarError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Gbnf, LiteralsClassesAndRepetition) {
  const std::string g = R"(root ::= "ab" [0-9]+ ("x" | "yz")? tail
tail ::= [^a-c]{2,3}  # comment
)";
  EXPECT_TRUE(matches(g, "ab1x!!"));
  EXPECT_TRUE(matches(g, "ab123yz!!!"));
  EXPECT_FALSE(matches(g, "ab123yz!!!!"));
  EXPECT_FALSE(matches(g, "abx!!"));
  EXPECT_FALSE(matches(g, "ab1xa!"));
  EXPECT_TRUE(prefix_ok(g, "ab12"));
  EXPECT_FALSE(prefix_ok(g, "ac"));
}

TEST(Gbnf, HexEscapes) {
  const std::string g = R"(root ::= "\x41" [\x30-\x39] "\u00E9" "\U0001F600")";
  EXPECT_TRUE(matches(g, "A7é😀"));
  EXPECT_FALSE(matches(g, "B7é😀"));
  EXPECT_NE(error_of(R"(root ::= "\x4g")").find("hex"), std::string::npos);
  EXPECT_NE(error_of(R"(root ::= "\x4)"), "");
}

TEST(Gbnf, Utf8ClassesMatchWholeCharacters) {
  const std::string g = R"(root ::= [^"]* "\"" [α-ω] "\u00e9" .)";
  EXPECT_TRUE(matches(g, "héllo😀\"βé€"));
  EXPECT_FALSE(matches(g, "\"aé€"));                        // a is not in α-ω
  EXPECT_FALSE(prefix_ok(g, std::string("\xff")));          // not UTF-8
  EXPECT_FALSE(prefix_ok(g, std::string("\xed\xa0\x80")));  // a surrogate
  EXPECT_TRUE(prefix_ok(g, std::string("\xe2\x82")));       // an incomplete character
}

TEST(Gbnf, NestedAndRecursiveRules) {
  const std::string g = R"(root ::= value
value ::= "[" ( value ("," value)* )? "]" | [0-9]
)";
  EXPECT_TRUE(matches(g, "[[1,[2]],[],3]"));
  EXPECT_FALSE(matches(g, "[[1,[2]],[],3"));
  EXPECT_FALSE(matches(g, "[1,]"));
}

TEST(Gbnf, ErrorsNamePlace) {
  EXPECT_NE(error_of("root ::= \"abc").find("line 1"), std::string::npos);
  EXPECT_NE(error_of("root ::= foo").find("'foo' is used but not defined"), std::string::npos);
  EXPECT_NE(error_of("root ::= root \"a\" | \"b\"").find("left-recursive"), std::string::npos);
  EXPECT_NE(error_of("root ::= x | \"a\"\nx ::= \"\" root \"b\"").find("left-recursive"),
            std::string::npos);
  EXPECT_NE(error_of("root ::= \"a\" root").find("derives no finite text"), std::string::npos);
  EXPECT_NE(error_of("foo ::= \"a\"").find("no rule 'root'"), std::string::npos);
  EXPECT_NE(error_of("root ::= \"a\"{99999}").find("limit"), std::string::npos);
  EXPECT_NE(error_of("root ::= [z-a]").find("out of order"), std::string::npos);
  EXPECT_NE(error_of("root ::= \"a\" )").find("line 1, column 14"), std::string::npos);
  std::string huge = "root ::=";
  for (int i = 0; i < 120; ++i) huge += " \"ab\"{9999}";
  EXPECT_NE(error_of(huge).find("too large"), std::string::npos);
  EXPECT_NE(error_of(std::string(300, '(')).find("line 1"), std::string::npos);
}

TEST(Matcher, RollbackRestoresState) {
  auto vocab = std::make_shared<TokenVocab>(std::vector<std::string>{"a", "b", "ab", "c"},
                                            std::vector<int32_t>{});
  auto cg = std::make_shared<CompiledGrammar>(parse_gbnf("root ::= (\"a\" \"b\")+ \"c\""), vocab);
  GrammarMatcher m(cg);
  EXPECT_TRUE(m.accept_token(2));
  EXPECT_TRUE(m.accept_token(0));
  EXPECT_FALSE(m.accept_token(3));
  EXPECT_TRUE(m.accept_token(1));
  EXPECT_TRUE(m.accept_token(3));
  EXPECT_TRUE(m.complete());
  m.rollback(2);
  EXPECT_FALSE(m.accepting());
  EXPECT_TRUE(m.accept_token(1));
  EXPECT_FALSE(m.accept_token(1));
  EXPECT_TRUE(m.accept_token(3));
  EXPECT_TRUE(m.complete());
}

// ---------------------------------------------------------------------------------------
// Masks: fast path == brute force, on random grammars, vocabularies and reachable states.

namespace {

const char* kGrammars[] = {
    // JSON-ish, with strings, numbers, nesting.
    R"G(root ::= value
value ::= object | array | string | number | "true" | "false" | "null"
object ::= "{" ws ( string ws ":" ws value ( ws "," ws string ws ":" ws value )* )? ws "}"
array ::= "[" ws ( value ( ws "," ws value )* )? ws "]"
string ::= "\"" ( [^"\\\x00-\x1f] | "\\" ["\\/bfnrt] )* "\""
number ::= "-"? ( "0" | [1-9] [0-9]* ) ( "." [0-9]+ )?
ws ::= " "?
)G",
    // Bounded repetitions and alternatives sharing prefixes.
    R"G(root ::= ( "ab" | "abc" | "b" [a-c]{0,3} )+ "." | "x"{2,5}
)G",
    // Unicode classes.
    R"G(root ::= [a-zé-ü€]+ ( " " [^a-z ]+ )* "!"
)G",
    // Deeply nested tiny named rules.
    R"G(root ::= item+
item ::= digit | "(" item* ")"
digit ::= [0-9]
)G",
};

std::vector<std::string> random_vocab(std::mt19937& rng, int n) {
  const std::vector<std::string> pieces = {
      "{", "}",    "[",    "]",    "\"", ":",  ",", " ",    "a",    "b", "c", "x",
      "0", "1",    "9",    "-",    ".",  "\\", "n", "true", "null", "é", "€", "ü",
      "😀", "\xe2", "\x82", "\xac", "(",  ")",  "!", "ab",   "abc",  "e", "z"};
  std::vector<std::string> v;
  std::uniform_int_distribution<int> len(1, 5), pick(0, static_cast<int>(pieces.size()) - 1);
  // Every single byte is a token, as in byte-level BPE (and SPM with byte fallback): any
  // byte prefix of the language can then be continued token by token.
  for (int b = 1; b < 256; ++b) v.push_back(std::string(1, static_cast<char>(b)));
  for (const auto& p : pieces) v.push_back(p);
  while (static_cast<int>(v.size()) < n) {
    std::string t;
    const int l = len(rng);
    for (int i = 0; i < l; ++i) t += pieces[pick(rng)];
    v.push_back(t);
  }
  v.push_back("");  // a token with no text: never allowed
  v.push_back("");  // end of generation
  return v;
}

}  // namespace

TEST(Mask, FastPathEqualsBruteForceOnRandomWalks) {
  std::mt19937 rng(1234);
  int n_states = 0;
  for (const char* gtext : kGrammars) {
    auto tokens = random_vocab(rng, 900);
    const int32_t eog = static_cast<int32_t>(tokens.size()) - 1;
    auto vocab = std::make_shared<TokenVocab>(tokens, std::vector<int32_t>{eog});
    auto cg = std::make_shared<CompiledGrammar>(parse_gbnf(gtext), vocab);
    cg->precompute();
    for (int walk = 0; walk < 12; ++walk) {
      GrammarMatcher m(cg);
      std::string text;
      for (int step = 0; step < 60; ++step) {
        TokenBitmask fast, ref;
        m.fill_mask(fast);
        m.fill_mask_reference(ref);
        ASSERT_EQ(fast, ref) << gtext << " after '" << text << "'";
        ++n_states;
        std::vector<int32_t> allowed;
        for (int32_t t = 0; t < vocab->n_vocab(); ++t)
          if ((fast[t >> 6] >> (t & 63)) & 1) allowed.push_back(t);
        ASSERT_FALSE(allowed.empty()) << "dead state after '" << text << "'";
        // Every allowed token keeps the text a prefix of the language; every other token
        // breaks it (checked by reading the bytes from a fresh matcher).
        for (int32_t t = 0; t < vocab->n_vocab(); t += 7) {
          GrammarMatcher fresh(cg);
          const bool ok = t == eog ? (fresh.accept_bytes(text) && fresh.accepting())
                                   : (!tokens[t].empty() && fresh.accept_bytes(text + tokens[t]));
          EXPECT_EQ(ok, static_cast<bool>((fast[t >> 6] >> (t & 63)) & 1)) << t;
        }
        // Prefer ending late so walks get deep.
        int32_t t = allowed[std::uniform_int_distribution<size_t>(0, allowed.size() - 1)(rng)];
        if (t == eog && allowed.size() > 1 && step < 50)
          t = allowed[0] == eog ? allowed[1] : allowed[0];
        if (t == eog) {
          EXPECT_TRUE(m.accepting());
          break;
        }
        ASSERT_TRUE(m.accept_token(t));
        text += tokens[t];
        if (m.complete()) break;
      }
      // The walk can always finish: closing bytes first, else any allowed single-byte
      // token (every byte is one), reaches an accepting state.
      bool finished = m.accepting();
      for (int k = 0; k < 400 && !finished; ++k) {
        TokenBitmask mask;
        m.fill_mask(mask);
        std::vector<int32_t> single;
        for (int32_t t = 0; t < vocab->n_vocab(); ++t)
          if (t != eog && tokens[t].size() == 1 && ((mask[t >> 6] >> (t & 63)) & 1))
            single.push_back(t);
        ASSERT_FALSE(single.empty()) << "no byte continues '" << text << "'";
        std::vector<int32_t> closers;
        for (int32_t a : single)
          if (std::string("}])\"!.").find(tokens[a][0]) != std::string::npos) closers.push_back(a);
        const auto& from = closers.empty() ? single : closers;
        const int32_t pick = from[std::uniform_int_distribution<size_t>(0, from.size() - 1)(rng)];
        ASSERT_TRUE(m.accept_token(pick));
        text += tokens[pick];
        finished = m.accepting();
      }
      EXPECT_TRUE(finished) << gtext << " text: " << text;
    }
  }
  EXPECT_GT(n_states, 200);
}

// ---------------------------------------------------------------------------------------
// The fewest bytes to a sentence, and closing a document within a token budget.

TEST(MinCompletion, HandComputedLengths) {
  const auto need = [](const std::string& gbnf, const std::string& prefix) {
    auto vocab =
        std::make_shared<TokenVocab>(std::vector<std::string>{"x"}, std::vector<int32_t>{});
    GrammarMatcher m(std::make_shared<CompiledGrammar>(parse_gbnf(gbnf), vocab));
    EXPECT_TRUE(m.accept_bytes(prefix)) << prefix;
    return m.min_bytes_to_accept();
  };
  EXPECT_EQ(need(R"(root ::= "ab" x
x ::= "cde" | "f" "g")",
                 ""),
            4u);
  EXPECT_EQ(need(R"(root ::= "ab" x
x ::= "cde" | "f" "g")",
                 "abc"),
            2u);
  EXPECT_EQ(need(R"(root ::= "[" ( "1" ( "," "1" )* )? "]")", "[1,1"), 1u);
  EXPECT_EQ(need(R"(root ::= "x"{3,5})", "x"), 2u);
  EXPECT_EQ(need(R"(root ::= "x"{3,5})", "xxxx"), 0u);
  // A rule that only recurses has no sentence: the alternative that avoids it counts.
  EXPECT_EQ(need(R"(root ::= loop | "ok"
loop ::= "l" loop)",
                 ""),
            2u);
}

// min_bytes_to_accept is the exact distance to a sentence: 0 exactly when accepting, no
// byte lowers it by more than one, and some byte lowers it by exactly one. Checked at
// every state of random walks over every grammar of the mask test.
TEST(MinCompletion, ExactOnRandomWalks) {
  std::mt19937 rng(99);
  int n_states = 0;
  for (const char* gtext : kGrammars) {
    auto vocab =
        std::make_shared<TokenVocab>(std::vector<std::string>{"x"}, std::vector<int32_t>{});
    auto cg = std::make_shared<CompiledGrammar>(parse_gbnf(gtext), vocab);
    for (int walk = 0; walk < 8; ++walk) {
      GrammarMatcher m(cg);
      std::string text;
      for (int step = 0; step < 40; ++step) {
        const uint32_t d = m.min_bytes_to_accept();
        ASSERT_NE(d, kNoCompletion) << text;
        EXPECT_EQ(d == 0, m.accepting()) << text;
        uint32_t best = kNoCompletion;
        std::vector<char> live;
        for (int b = 0; b < 256; ++b) {
          const std::string byte(1, static_cast<char>(b));
          if (!m.accept_bytes(byte)) continue;
          const uint32_t after = m.min_bytes_to_accept();
          m.rollback(1);
          live.push_back(static_cast<char>(b));
          best = std::min(best, after);
          EXPECT_GE(after + 1, d) << text << " + byte " << b;
        }
        ++n_states;
        if (live.empty()) break;  // complete
        if (d > 0) {
          EXPECT_EQ(best + 1, d) << text;
        }
        const char b = live[std::uniform_int_distribution<size_t>(0, live.size() - 1)(rng)];
        ASSERT_TRUE(m.accept_bytes(std::string(1, b)));
        text += b;
      }
    }
  }
  EXPECT_GT(n_states, 300);
}

namespace {

// The JSON-ish grammar of the mask test over a random byte-level vocabulary of 600 tokens
// whose last token ends generation.
struct JsonOverRandomVocab {
  std::vector<std::string> tokens;
  int32_t eog;
  std::shared_ptr<CompiledGrammar> cg;
  int n_vocab;
  explicit JsonOverRandomVocab(std::mt19937& rng) : tokens(random_vocab(rng, 600)) {
    eog = static_cast<int32_t>(tokens.size()) - 1;
    auto vocab = std::make_shared<TokenVocab>(tokens, std::vector<int32_t>{eog});
    cg = std::make_shared<CompiledGrammar>(parse_gbnf(kGrammars[0]), vocab);
    n_vocab = vocab->n_vocab();
  }
};

}  // namespace

// With a budget, a walk that would never close (the model "loops" in a string) is closed
// in time: the sequence is a sentence when its budget runs out, whatever it preferred.
TEST(SequenceGrammarBudget, ClosesDocumentsBeforeTheBudgetEnds) {
  std::mt19937 rng(7);
  const JsonOverRandomVocab j(rng);
  const auto& [tokens, eog, cg, n_vocab] = j;
  for (int budget : {3, 8, 20, 60, 150}) {
    for (int trial = 0; trial < 6; ++trial) {
      SequenceGrammar sg(cg, nullptr);
      // Logits that favour opening structures and writing string content over closing.
      std::vector<float> base(n_vocab);
      std::uniform_real_distribution<float> u(0.0f, 1.0f);
      for (int32_t t = 0; t < n_vocab; ++t) {
        const std::string& s = tokens[t];
        float v = u(rng);
        if (s.find_first_of("{[\"a") != std::string::npos) v += 2.0f;
        if (s.find_first_of("}]") != std::string::npos) v -= 2.0f;
        base[t] = v;
      }
      base[eog] = -5.0f;
      const auto argmax = [&](float* l) {
        return static_cast<int32_t>(std::max_element(l, l + n_vocab) - l);
      };
      std::string text;
      bool ended = false;
      for (int left = budget; left > 0; --left) {
        std::vector<float> lg = base;
        const int32_t t = sg.sample(lg.data(), n_vocab, left, argmax);
        ASSERT_GE(t, 0) << text;
        if (t == eog) {
          ended = true;
          break;
        }
        ASSERT_TRUE(sg.accept(t)) << text;
        text += tokens[t];
        if (sg.complete()) {
          ended = true;
          break;
        }
      }
      // The first token of a JSON value with no budget to spare must already be a
      // whole value ("0", "true", ...); with 3 tokens a string "" fits.
      EXPECT_TRUE(ended || sg.accepting()) << "budget " << budget << ": " << text;
      GrammarMatcher check(cg);
      EXPECT_TRUE(check.accept_bytes(text) && check.accepting())
          << "budget " << budget << ": " << text;
    }
  }
}

// Without a budget the same preferences never close the document: the test above can fail.
TEST(SequenceGrammarBudget, WithoutBudgetTheWalkRunsOn) {
  std::mt19937 rng(7);
  const JsonOverRandomVocab j(rng);
  const auto& [tokens, eog, cg, n_vocab] = j;
  std::vector<float> base(n_vocab, 0.0f);
  for (int32_t t = 0; t < n_vocab; ++t)
    if (tokens[t] == "a") base[t] = 5.0f;  // string content forever
  base[eog] = -5.0f;
  SequenceGrammar sg(cg, nullptr);
  std::string text;
  for (int i = 0; i < 20; ++i) {
    std::vector<float> lg = base;
    ASSERT_GT(sg.apply(lg.data(), n_vocab), 0);
    const int32_t t = static_cast<int32_t>(std::max_element(lg.begin(), lg.end()) - lg.begin());
    ASSERT_TRUE(sg.accept(t));
    text += tokens[t];
  }
  EXPECT_FALSE(sg.accepting()) << text;
}
