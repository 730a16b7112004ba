// Speculative decoding: n-gram lookup, KV rollback of rejected proposals (block tables
// and the prefix cache stay consistent, shared blocks are never rolled back), the
// rejection-sampling rule (chi-square against the target distribution, and the same test
// catching a broken rule), and the engine end to end on stories260K: greedy output equal
// with speculation on and off, sampled first/second-token distributions equal.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "engine/engine.h"
#include "engine/scheduler.h"
#include "engine/speculative.h"
#include "models/model.h"
#include "spec/draft_proposer.h"
#include "spec/ngram_proposer.h"
#include "spec/verify.h"
#include "stream_testing.h"

namespace tessera {
namespace {

const std::string kModel = std::string(TESSERA_TEST_DATA) + "/stories260K-f32.gguf";

// ---------------------------------------------------------------------------------------
// Chi-square helpers. Critical values at p = 0.001 (Wilson-Hilferty approximation of the
// chi-square quantile, within 1% for df >= 3); a correct sampler fails one test in 1000.

double chi2_critical_001(int df) {
  const double z = 3.0902;  // standard normal quantile at 0.999
  const double a = 2.0 / (9.0 * df);
  return df * std::pow(1.0 - a + z * std::sqrt(a), 3.0);
}

// Goodness of fit of counts to probabilities p (categories with expected < 5 merged).
double chi2_fit(const std::map<int, int>& counts, const std::map<int, double>& p, int n, int* df) {
  double stat = 0.0, rest_e = 0.0, rest_o = 0.0;
  int cats = 0;
  std::map<int, bool> seen;
  for (const auto& [id, pr] : p) {
    const double e = pr * n;
    const auto it = counts.find(id);
    const double o = it == counts.end() ? 0 : it->second;
    seen[id] = true;
    if (e < 5) {
      rest_e += e;
      rest_o += o;
      continue;
    }
    stat += (o - e) * (o - e) / e;
    ++cats;
  }
  for (const auto& [id, c] : counts)
    if (!seen.count(id)) rest_o += c;  // outside p's support
  if (rest_e > 0 || rest_o > 0) {
    stat += (rest_o - rest_e) * (rest_o - rest_e) / std::max(rest_e, 0.5);
    ++cats;
  }
  *df = cats - 1;
  return stat;
}

// Two-sample chi-square test of homogeneity (categories with fewer than 10 in both
// samples merged).
double chi2_two_sample(const std::map<int, int>& a, const std::map<int, int>& b, int* df) {
  std::map<int, std::pair<double, double>> cells;
  for (const auto& [k, v] : a) cells[k].first += v;
  for (const auto& [k, v] : b) cells[k].second += v;
  std::vector<std::pair<double, double>> merged;
  std::pair<double, double> rest{0, 0};
  for (const auto& [k, v] : cells) {
    if (v.first + v.second < 10)
      rest = {rest.first + v.first, rest.second + v.second};
    else
      merged.push_back(v);
  }
  if (rest.first + rest.second > 0) merged.push_back(rest);
  double na = 0, nb = 0;
  for (auto& [x, y] : merged) na += x, nb += y;
  double stat = 0.0;
  for (auto& [x, y] : merged) {
    const double tot = x + y;
    const double ea = tot * na / (na + nb), eb = tot * nb / (na + nb);
    stat += (x - ea) * (x - ea) / ea + (y - eb) * (y - eb) / eb;
  }
  *df = static_cast<int>(merged.size()) - 1;
  return stat;
}

// ---------------------------------------------------------------------------------------
// N-gram lookup

TEST(NgramProposer, ProposesTheContinuationOfTheLatestMatch) {
  // ... 5 6 7 8 | 5 6 9 | 5 6  -> the latest earlier "5 6" is followed by 9 5 6
  const std::vector<int32_t> t = {1, 5, 6, 7, 8, 5, 6, 9, 5, 6};
  EXPECT_EQ(NgramProposer::lookup(t, 1, 2, 3), (std::vector<int32_t>{9, 5, 6}));
  EXPECT_EQ(NgramProposer::lookup(t, 1, 2, 1), (std::vector<int32_t>{9}));
  // A 3-gram "9 5 6" has no earlier occurrence; min 3 finds nothing.
  EXPECT_TRUE(NgramProposer::lookup(t, 3, 3, 4).empty());
  // A continuation that reaches the end of the sequence runs on into the proposal: the
  // tokens since the match repeat.
  const std::vector<int32_t> u = {3, 4, 3};
  EXPECT_EQ(NgramProposer::lookup(u, 1, 1, 5), (std::vector<int32_t>{4, 3, 4, 3, 4}));
  EXPECT_EQ(NgramProposer::lookup({2, 8, 8, 8}, 2, 2, 3), (std::vector<int32_t>{8, 8, 8}));
  EXPECT_EQ(NgramProposer::lookup(t, 2, 2, 5), (std::vector<int32_t>{9, 5, 6, 9, 5}));
  EXPECT_TRUE(NgramProposer::lookup({7}, 1, 4, 5).empty());
  EXPECT_TRUE(NgramProposer::lookup({}, 1, 4, 5).empty());
}

TEST(SpeculativeConfig, RejectsBadSettings) {
  SpeculativeConfig c;
  c.method = "ngram";
  c.num_speculative_tokens = 0;
  EXPECT_THROW(validate_speculative_config(c), Error);
  c.num_speculative_tokens = kMaxSpeculativeTokens + 1;
  EXPECT_THROW(validate_speculative_config(c), Error);
  c.num_speculative_tokens = 4;
  EXPECT_NO_THROW(validate_speculative_config(c));
  c.ngram_min = 3;
  c.ngram_max = 2;
  EXPECT_THROW(validate_speculative_config(c), Error);
  c.ngram_min = 1;
  c.method = "draft";
  EXPECT_THROW(validate_speculative_config(c), Error);  // no draft model
  c.method = "medusa";
  EXPECT_THROW(validate_speculative_config(c), Error);
}

// ---------------------------------------------------------------------------------------
// KV rollback

TEST(SpeculativeKV, RollbackFreesOnlyTheRejectedTailAndCachesOnlyVerifiedBlocks) {
  const int B = 4;
  KVCacheManager kv(32, B, /*prefix=*/true);
  SchedulerConfig sc;
  Scheduler sched(sc, kv);
  // A request with a 9-token prompt: prefill computes 9 tokens (3 blocks, 2 full).
  Request r;
  r.id = 1;
  for (int i = 0; i < 9; ++i) r.tokens.push_back(100 + i);
  r.n_prompt = 9;
  r.max_tokens = 50;
  sched.add(&r);
  SchedulerOutput out = sched.schedule();
  ASSERT_EQ(out.items.size(), 1u);
  sched.step_done(out);
  EXPECT_EQ(r.n_computed, 9);
  r.tokens.push_back(7);  // sampled token: now a decode (10 tokens, 9 computed)

  // Propose 6 tokens: the step computes positions 9..15 (t_last + 6), 4 blocks.
  r.spec_tokens = {1, 2, 3, 4, 5, 6};
  out = sched.schedule();
  ASSERT_EQ(out.items.size(), 1u);
  EXPECT_EQ(out.items[0].n_new, 7);
  EXPECT_TRUE(out.items[0].sample);
  EXPECT_EQ(r.blocks.size(), 4u);
  const int used_before = kv.pool().n_used();
  sched.step_done(out);
  // Proposals are not computed tokens until accepted; only verified full blocks cached.
  EXPECT_EQ(r.n_computed, 10);
  for (size_t i = 0; i < r.blocks.size(); ++i)
    EXPECT_EQ(kv.pool().is_cached(r.blocks[i]), i < 2) << "block " << i;

  // Accept 1, 2; emit 9 as the correction: tokens = prompt, 7, 1, 2, 9 (13 tokens).
  for (int32_t t : {1, 2, 9}) r.tokens.push_back(t);
  Speculator::commit(kv, r);
  EXPECT_EQ(r.n_computed, 12);
  EXPECT_EQ(r.blocks.size(), 3u);  // positions 0..11
  EXPECT_EQ(kv.pool().n_used(), used_before - 1);
  EXPECT_TRUE(r.spec_tokens.empty());
  EXPECT_TRUE(kv.pool().is_cached(r.blocks[2]));  // 8..11 now full of verified tokens
  EXPECT_EQ(r.block_hashes.size(), 3u);

  // A second request with the same 12 verified tokens + 1 reuses those 3 blocks.
  Request r2;
  r2.id = 2;
  r2.tokens.assign(r.tokens.begin(), r.tokens.begin() + 12);
  r2.tokens.push_back(55);
  r2.n_prompt = 13;
  r2.max_tokens = 5;
  const std::vector<int> hit = kv.find_cached_prefix(r2);
  ASSERT_EQ(hit.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(hit[i], r.blocks[i]);
  ASSERT_TRUE(kv.allocate(r2, 1, hit));
  EXPECT_EQ(kv.pool().ref_count(r.blocks[2]), 2);

  // r now proposes again; its shared blocks stay untouched by the rollback: proposals are
  // written from position 12 on, into a block of its own.
  r.spec_tokens = {8, 8};
  out = sched.schedule();
  ASSERT_EQ(out.items.size(), 1u);
  EXPECT_EQ(out.items[0].start, 12);
  EXPECT_EQ(out.items[0].n_new, 3);
  EXPECT_EQ(kv.pool().ref_count(r.blocks[3]), 1);
  sched.step_done(out);
  r.tokens.push_back(4);  // nothing accepted
  Speculator::commit(kv, r);
  EXPECT_EQ(r.n_computed, 13);
  EXPECT_EQ(r.blocks.size(), 4u);
  EXPECT_EQ(kv.pool().ref_count(r.blocks[2]), 2);
  sched.finish(&r, RequestStatus::FINISHED_STOPPED);
  kv.free(r2);
  EXPECT_EQ(kv.pool().n_used(), 0);
}

TEST(SpeculativeKV, ProposalsNeverPreemptAndAreDroppedWhenThePoolIsFull) {
  const int B = 4;
  KVCacheManager kv(3, B, /*prefix=*/false);  // 12 token slots
  SchedulerConfig sc;
  Scheduler sched(sc, kv);
  Request r;
  r.id = 1;
  for (int i = 0; i < 8; ++i) r.tokens.push_back(i);
  r.n_prompt = 8;
  r.max_tokens = 8;
  sched.add(&r);
  SchedulerOutput out = sched.schedule();
  sched.step_done(out);
  r.tokens.push_back(9);
  r.spec_tokens = {1, 2, 3, 4, 5, 6, 7};  // would need positions up to 15: 4 blocks
  out = sched.schedule();
  ASSERT_EQ(out.items.size(), 1u);
  EXPECT_TRUE(out.preempted.empty());
  EXPECT_EQ(out.items[0].n_new, 1);
  EXPECT_TRUE(r.spec_tokens.empty());
}

TEST(SpeculativeKV, TheBudgetTruncatesProposals) {
  KVCacheManager kv(16, 4, false);
  SchedulerConfig sc;
  sc.max_num_batched_tokens = 3;
  Scheduler sched(sc, kv);
  Request r;
  r.id = 1;
  r.tokens = {1, 2};
  r.n_prompt = 2;
  r.max_tokens = 8;
  sched.add(&r);
  sched.step_done(sched.schedule());
  r.tokens.push_back(3);
  r.spec_tokens = {4, 5, 6, 7};
  SchedulerOutput out = sched.schedule();
  ASSERT_EQ(out.items.size(), 1u);
  EXPECT_EQ(out.items[0].n_new, 3);
  EXPECT_EQ(r.spec_tokens, (std::vector<int32_t>{4, 5}));
}

// ---------------------------------------------------------------------------------------
// The acceptance rule

using Dist = std::vector<Sampler::TokenProb>;

// Draws d ~ q (or d fixed for a point mass), applies `rule`, returns token counts.
template <class Rule>
std::map<int, int> run_rule(const Dist& p, const Dist& q, int32_t fixed_d, int n, Rule rule) {
  std::mt19937_64 rng(12345);
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  std::map<int, int> counts;
  for (int i = 0; i < n; ++i) {
    int32_t d = fixed_d;
    if (!q.empty()) {
      const double u = uni(rng);
      double cum = 0;
      d = q.back().id;
      for (const auto& t : q)
        if (u < (cum += t.p)) {
          d = t.id;
          break;
        }
    }
    const double u1 = uni(rng), u2 = uni(rng);
    ++counts[rule(p, q, d, u1, u2)];
  }
  return counts;
}

std::map<int, double> as_map(const Dist& d) {
  std::map<int, double> m;
  for (const auto& t : d) m[t.id] = t.p;
  return m;
}

TEST(SpeculativeVerify, RejectionSamplingReproducesTheTargetAndCatchesABrokenRule) {
  // Target p and a draft q that disagree, with tokens only one of them supports.
  const Dist p = {{0, 0.35f}, {1, 0.25f}, {2, 0.2f}, {3, 0.12f}, {4, 0.08f}};
  const Dist q = {{1, 0.4f}, {0, 0.1f}, {2, 0.2f}, {5, 0.2f}, {3, 0.1f}};
  const int n = 40000;
  auto exact = [](const Dist& p, const Dist& q, int32_t d, double u, double u2) {
    bool acc;
    return accept_or_resample(p, q, d, u, u2, &acc);
  };
  // Broken on purpose: accepts every proposal (the output follows q, not p).
  auto always = [](const Dist&, const Dist&, int32_t d, double, double) { return d; };
  // Broken subtly: accepts with min(1, q/p) (ratio inverted).
  auto inverted = [](const Dist& p, const Dist& q, int32_t d, double u, double u2) {
    bool acc;
    Dist p2 = p, q2 = q;
    return accept_or_resample(q2, p2, d, u, u2, &acc);  // swaps roles
  };
  const double crit = chi2_critical_001(4);  // 5 categories of p's support
  int df = 0;
  const double ok = chi2_fit(run_rule(p, q, -1, n, exact), as_map(p), n, &df);
  EXPECT_LT(ok, chi2_critical_001(df)) << "exact rule, df " << df;
  EXPECT_GT(chi2_fit(run_rule(p, q, -1, n, always), as_map(p), n, &df), chi2_critical_001(df));
  EXPECT_GT(chi2_fit(run_rule(p, q, -1, n, inverted), as_map(p), n, &df), chi2_critical_001(df));
  (void)crit;

  // Point-mass proposals (n-gram): d fixed, accepted with probability p(d).
  for (int32_t d : {0, 3, 7}) {
    const double s = chi2_fit(run_rule(p, {}, d, n, exact), as_map(p), n, &df);
    EXPECT_LT(s, chi2_critical_001(df)) << "point mass on " << d;
    EXPECT_GT(chi2_fit(run_rule(p, {}, d, n, always), as_map(p), n, &df), chi2_critical_001(df));
  }
}

TEST(SpeculativeVerify, GreedyAcceptsTheMatchingPrefixAndEmitsTheArgmax) {
  SamplingParams sp;
  sp.temperature = 0.0f;
  const int V = 8;
  Sampler s(sp, V);
  // Row j's argmax: 3, 5, 1, 6.
  std::vector<float> rows(4 * V, 0.0f);
  rows[0 * V + 3] = rows[1 * V + 5] = rows[2 * V + 1] = rows[3 * V + 6] = 1.0f;
  auto r = rows;
  EXPECT_EQ(verify_proposals(s, r.data(), V, {0}, {3, 5, 2}, {}), (std::vector<int32_t>{3, 5, 1}));
  r = rows;
  EXPECT_EQ(verify_proposals(s, r.data(), V, {0}, {3, 5, 1}, {}),
            (std::vector<int32_t>{3, 5, 1, 6}));  // all accepted + bonus
  r = rows;
  EXPECT_EQ(verify_proposals(s, r.data(), V, {0}, {4, 5, 1}, {}), (std::vector<int32_t>{3}));
}

// ---------------------------------------------------------------------------------------
// End to end on stories260K

EngineConfig small_config(const SpeculativeConfig& spec = {}) {
  EngineConfig cfg;
  cfg.kv_cache_bytes = int64_t{32} << 20;
  cfg.max_model_len = 256;
  cfg.speculative = spec;
  return cfg;
}

std::vector<int32_t> ids(const Engine::Result& r) {
  std::vector<int32_t> v;
  for (const auto& g : r.tokens) v.push_back(g.token);
  return v;
}

std::vector<std::vector<int32_t>> story_prompts(const Model& m) {
  std::vector<std::vector<int32_t>> out;
  for (const char* t :
       {"Once upon a time there was a little girl. Once upon a time", "The little dog ran",
        "Lily and Ben went to the park. Lily and Ben", "One day, a big bird saw a big",
        "Tom had a red ball. Tom had a", "The sun was hot. The sun"})
    out.push_back(m.tokenizer().encode(t, true, false));
  return out;
}

GenerateParams greedy(int n) {
  GenerateParams p;
  p.sampling.temperature = 0.0f;
  p.max_tokens = n;
  p.ignore_eos = true;
  return p;
}

TEST(SpeculativeEngine, GreedyOutputIsIdenticalWithAndWithoutSpeculation) {
  auto model = load_model(kModel, {.n_threads = 2});
  auto ps = story_prompts(*model);
  std::vector<Engine::Result> off;
  {
    Engine e(*model, small_config());
    off = e.generate(ps, greedy(80));
  }
  SpeculativeConfig ng;  // speculating at any batch size (6 sequences here)
  ng.method = "ngram";
  ng.num_speculative_tokens = 4;
  ng.disable_by_batch_size = 0;
  SpeculativeConfig dr;
  dr.method = "draft";
  dr.draft_model = kModel;
  dr.num_speculative_tokens = 3;
  dr.disable_by_batch_size = 0;
  dr.draft_load.n_threads = 2;
  SpeculativeConfig dq = dr;  // a perturbed draft: its weights quantized
  dq.draft_load.quantization = "q4_0";
  for (const SpeculativeConfig& sc : {ng, dr, dq}) {
    Engine e(*model, small_config(sc));
    const std::vector<Engine::Result> on = e.generate(ps, greedy(80));
    for (size_t i = 0; i < ps.size(); ++i)
      EXPECT_EQ(ids(on[i]), ids(off[i]))
          << sc.method << sc.draft_load.quantization << " prompt " << i;
    const EngineMetrics m = e.metrics();
    EXPECT_GT(m.spec_proposed, 0);
    EXPECT_GT(m.spec_accepted, 0);
    EXPECT_LE(m.spec_accepted, m.spec_proposed);
    EXPECT_EQ(m.kv_blocks_used, 0);  // every block back after rollbacks and finishes
    if (sc.method == "draft" && sc.draft_load.quantization.empty()) {
      EXPECT_EQ(m.spec_accepted, m.spec_proposed);  // a draft equal to the target
    }
  }
}

// First and second tokens sampled at temperature 1 with top-p 0.9: the distributions
// with speculation (n-gram point masses; a perturbed draft) match those without
// (two-sample chi-square, p = 0.001).
TEST(SpeculativeEngine, SampledDistributionsMatchWithoutSpeculation) {
  auto model = load_model(kModel, {.n_threads = 2});
  // The n-gram run's prompt holds every ordinary token once (shuffled), then a story
  // start: whatever the first sampled token is, the proposer finds it and proposes what
  // followed it. The draft run uses the story start alone.
  const std::vector<int32_t> story = model->tokenizer().encode("Tom saw a", true, false);
  std::vector<int32_t> vocab_prompt = {model->tokenizer().bos_id()};
  std::vector<int32_t> all;
  for (int32_t t = 3; t < model->config().n_vocab; ++t) all.push_back(t);
  std::shuffle(all.begin(), all.end(), std::mt19937(7));
  vocab_prompt.insert(vocab_prompt.end(), all.begin(), all.end());
  for (size_t i = 1; i < story.size(); ++i) vocab_prompt.push_back(story[i]);

  GenerateParams gp;
  gp.sampling.temperature = 1.0f;
  gp.sampling.top_p = 0.9f;
  gp.sampling.top_k = 0;
  gp.sampling.min_p = 0.0f;
  // The first token comes from the prefill; the second is verified as a proposal (k = 1,
  // the most max_tokens leaves room for), the third is the bonus or follows a correction.
  gp.max_tokens = 3;
  gp.ignore_eos = true;
  const int n = 2000;
  struct Counts {
    std::map<int, int> first, second, third;
    EngineMetrics m;
  };
  auto sample = [&](const SpeculativeConfig& sc, const std::vector<int32_t>& prompt) {
    Counts c;
    EngineConfig cfg = small_config(sc);
    cfg.max_num_seqs = 128;
    cfg.max_model_len = 1024;
    Engine e(*model, cfg);
    std::vector<std::vector<int32_t>> ps(n, prompt);
    for (const Engine::Result& r : e.generate(ps, gp)) {
      EXPECT_EQ(r.tokens.size(), 3u);
      if (r.tokens.size() != 3u) continue;
      ++c.first[r.tokens[0].token];
      ++c.second[r.tokens[0].token * 1000 + r.tokens[1].token];  // joint (t1, t2)
      ++c.third[r.tokens[2].token];
    }
    c.m = e.metrics();
    return c;
  };
  SpeculativeConfig ng;
  ng.method = "ngram";
  ng.ngram_min = 1;
  ng.num_speculative_tokens = 3;
  ng.disable_by_batch_size = 0;  // 128 sequences decode at once
  ng.adaptive = false;           // always propose: what is tested is the verification
  SpeculativeConfig dq;
  dq.method = "draft";
  dq.draft_model = kModel;
  dq.num_speculative_tokens = 2;
  dq.disable_by_batch_size = 0;
  dq.adaptive = false;
  dq.draft_load.n_threads = 2;
  dq.draft_load.quantization = "q4_0";  // a perturbed draft: q != p
  for (const auto& [sc, prompt] : {std::pair{ng, vocab_prompt}, std::pair{dq, story}}) {
    const Counts off = sample({}, prompt);
    const Counts on = sample(sc, prompt);
    // The second token is verified as a proposal in most runs, not sampled directly.
    EXPECT_GT(on.m.spec_proposed, n / 2) << sc.method;
    EXPECT_LT(on.m.spec_accepted, on.m.spec_proposed) << sc.method;  // rejections happened
    // The n-gram proposals here (what followed in a shuffled vocabulary) are nearly always
    // rejected, which exercises the residual; the perturbed draft's mostly accepted.
    if (sc.method == "draft") {
      EXPECT_GT(on.m.spec_accepted, on.m.spec_proposed / 2);
    }
    int df = 0;
    const double a = chi2_two_sample(off.first, on.first, &df);
    EXPECT_LT(a, chi2_critical_001(df)) << sc.method << " first token, df " << df;
    const double b = chi2_two_sample(off.second, on.second, &df);
    EXPECT_LT(b, chi2_critical_001(df)) << sc.method << " (first, second) tokens, df " << df;
    const double c = chi2_two_sample(off.third, on.third, &df);
    EXPECT_LT(c, chi2_critical_001(df)) << sc.method << " third token, df " << df;
    std::printf(
        "%s: chi-square first %.1f, (first, second) %.1f, third %.1f; %lld proposed, "
        "%lld accepted\n",
        sc.method.c_str(), a, b, c, static_cast<long long>(on.m.spec_proposed),
        static_cast<long long>(on.m.spec_accepted));
  }
}

// The model drafting for itself, 3 tokens, no speculation above 5 decoding sequences,
// every prompt of story_prompts in the first step. Fixed k: a self-draft never pays, and
// adaptive k would stop proposing; these tests are about when proposals may be made.
EngineConfig self_draft_cut_off_at_5() {
  SpeculativeConfig sc;
  sc.method = "draft";
  sc.draft_model = kModel;
  sc.num_speculative_tokens = 3;
  sc.disable_by_batch_size = 5;
  sc.adaptive = false;
  sc.draft_load.n_threads = 2;
  EngineConfig cfg = small_config(sc);
  cfg.max_num_batched_tokens = 4096;
  return cfg;
}

TEST(SpeculativeEngine, NoSpeculationAboveTheBatchSizeCutOff) {
  auto model = load_model(kModel, {.n_threads = 2});
  auto ps = story_prompts(*model);  // 6 sequences decoding together
  Engine e(*model, self_draft_cut_off_at_5());
  // Submitted as one group, so the first step sees all six (generate() submits one by one,
  // and the engine may take a step between two submissions).
  auto streams = e.submit_all(ps, std::vector<GenerateParams>(ps.size(), greedy(20)));
  std::vector<int32_t> first;
  for (size_t i = 0; i < streams.size(); ++i)
    EXPECT_TRUE(testing_util::read_to_end(*streams[i], i == 0 ? &first : nullptr));
  streams.clear();
  // All six decode in lockstep for 20 tokens: never 5 or fewer at once.
  EXPECT_EQ(e.metrics().spec_proposed, 0);
  std::vector<Engine::Result> one = e.generate({ps[0]}, greedy(20));
  EXPECT_GT(e.metrics().spec_proposed, 0);
  EXPECT_EQ(ids(one[0]), first);
}

// A sequence that began decoding in a batch above the cut-off gets no draft proposals when
// the batch thins out: the draft would first have to read its whole context.
TEST(SpeculativeEngine, ADraftNeverCatchesUpASequenceThatBeganInALargeBatch) {
  auto model = load_model(kModel, {.n_threads = 2});
  auto ps = story_prompts(*model);  // 6 sequences decoding together
  Engine e(*model, self_draft_cut_off_at_5());
  std::vector<GenerateParams> params(ps.size(), greedy(2));
  params[0] = greedy(40);  // decodes alone for 38 tokens after the others finish
  auto streams = e.submit_all(ps, params);
  for (auto& s : streams) EXPECT_TRUE(testing_util::read_to_end(*s));
  streams.clear();
  EXPECT_EQ(e.metrics().spec_proposed, 0);
  // A sequence that begins alone is speculated for.
  e.generate({ps[0]}, greedy(20));
  EXPECT_GT(e.metrics().spec_proposed, 0);
}

TEST(SpeculativeEngine, StartUpErrors) {
  auto model = load_model(kModel, {.n_threads = 2});
  SpeculativeConfig sc;
  sc.method = "draft";
  sc.num_speculative_tokens = 4;
  sc.draft_model = "/nonexistent/draft.gguf";
  EXPECT_THROW(Engine(*model, small_config(sc)), Error);
  sc.method = "ngram";
  sc.draft_model.clear();
  sc.num_speculative_tokens = -1;
  EXPECT_THROW(Engine(*model, small_config(sc)), Error);
}

}  // namespace
}  // namespace tessera
