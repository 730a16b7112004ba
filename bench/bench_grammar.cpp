// Grammar compile time and token-mask time over a model's vocabulary.
//
//   bench_grammar MODEL.gguf SCHEMAS.json [STEPS]
//
// SCHEMAS.json: an array of [name, schema] pairs (tests/e2e/structured_schemas.py writes
// one: `python -c 'import json, structured_schemas as s; print(json.dumps([[n, x] for n, x,
// _ in s.SCHEMAS]))'`). For each schema: the time to compile it (JSON Schema -> GBNF ->
// grammar -> mask precomputation), then a random walk of STEPS tokens (default 64) through
// allowed tokens, timing each mask (the cached fast path) and, every 8th step, the
// brute-force mask for comparison. Prints per-schema lines and the medians / maxima.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "loader/gguf.h"
#include "structured/json_schema.h"
#include "structured/token_mask.h"
#include "tokenizer/tokenizer.h"

using namespace tessera;
using namespace tessera::structured;
using Clock = std::chrono::steady_clock;

static double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

static double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL.gguf SCHEMAS.json [STEPS]\n", argv[0]);
    return 2;
  }
  try {
    const int steps = argc > 3 ? std::atoi(argv[3]) : 64;
    auto file = gguf::File::open(argv[1]);
    auto tok = Tokenizer::from_gguf(*file);
    auto t0 = Clock::now();
    auto vocab = std::make_shared<const TokenVocab>(*tok);
    std::printf("vocabulary: %d tokens, trie of %zu nodes built in %.1f ms\n", tok->n_vocab(),
                vocab->trie().size(), since(t0) * 1e3);
    std::ifstream in(argv[2]);
    std::stringstream ss;
    ss << in.rdbuf();
    const auto schemas = nlohmann::ordered_json::parse(ss.str());
    std::vector<double> compile_s, mask_s, ref_s;
    std::mt19937 rng(0);
    for (const auto& entry : schemas) {
      const std::string name = entry[0].get<std::string>();
      t0 = Clock::now();
      auto cg = std::make_shared<CompiledGrammar>(parse_gbnf(json_schema_to_gbnf(entry[1])), vocab);
      const size_t n_entries = cg->precompute();
      const double tc = since(t0);
      compile_s.push_back(tc);
      GrammarMatcher m(cg);
      std::vector<double> mine;
      TokenBitmask mask, ref;
      for (int i = 0; i < steps && !m.complete(); ++i) {
        t0 = Clock::now();
        m.fill_mask(mask);
        mine.push_back(since(t0));
        if (i % 8 == 0) {
          t0 = Clock::now();
          m.fill_mask_reference(ref);
          ref_s.push_back(since(t0));
          if (ref != mask) {
            std::fprintf(stderr, "%s: fast mask differs from the reference at step %d\n",
                         name.c_str(), i);
            return 1;
          }
        }
        std::vector<int32_t> allowed;
        for (int32_t t = 0; t < tok->n_vocab(); ++t)
          if (((mask[t >> 6] >> (t & 63)) & 1) && !tok->is_eog(t)) allowed.push_back(t);
        if (allowed.empty()) break;
        const int32_t t =
            allowed[std::uniform_int_distribution<size_t>(0, allowed.size() - 1)(rng)];
        m.accept_token(t);
      }
      mask_s.insert(mask_s.end(), mine.begin(), mine.end());
      std::printf(
          "%-24s compile %8.2f ms (%4zu cached positions)  mask median %7.1f us max %8.1f us\n",
          name.c_str(), tc * 1e3, n_entries, percentile(mine, 0.5) * 1e6,
          percentile(mine, 1.0) * 1e6);
    }
    std::printf(
        "\n%zu schemas: compile median %.2f ms, max %.2f ms; mask per token (fast path) median "
        "%.1f us, p99 %.1f us, max %.1f us over %zu tokens; brute-force mask median %.1f us\n",
        compile_s.size(), percentile(compile_s, 0.5) * 1e3, percentile(compile_s, 1.0) * 1e3,
        percentile(mask_s, 0.5) * 1e6, percentile(mask_s, 0.99) * 1e6,
        percentile(mask_s, 1.0) * 1e6, mask_s.size(), percentile(ref_s, 0.5) * 1e6);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
