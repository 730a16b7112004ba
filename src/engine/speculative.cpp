#include "engine/speculative.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "core/error.h"
#include "spec/draft_proposer.h"
#include "spec/ngram_proposer.h"
#include "spec/verify.h"

namespace tessera {

void validate_speculative_config(const SpeculativeConfig& c) {
  if (c.method.empty()) return;
  if (c.method != "ngram" && c.method != "draft")
    throw Error("unknown speculative method '" + c.method + "' (ngram or draft)");
  if (c.num_speculative_tokens < 1 || c.num_speculative_tokens > kMaxSpeculativeTokens)
    throw Error("--num-speculative-tokens must be between 1 and " +
                std::to_string(kMaxSpeculativeTokens) + " (got " +
                std::to_string(c.num_speculative_tokens) + ")");
  if (c.method == "draft" && c.draft_model.empty())
    throw Error("--speculative-method draft needs --speculative-model PATH");
  if (c.method == "ngram" && !c.draft_model.empty())
    throw Error("--speculative-model is for --speculative-method draft, not ngram");
  if (c.ngram_min < 1 || c.ngram_max < c.ngram_min || c.ngram_max > 64)
    throw Error("n-gram lengths must satisfy 1 <= --ngram-min <= --ngram-max <= 64 (got " +
                std::to_string(c.ngram_min) + ".." + std::to_string(c.ngram_max) + ")");
  if (c.disable_by_batch_size < 0) throw Error("--speculative-disable-by-batch-size must be >= 0");
}

namespace {

// Adaptive k: a sequence for which proposing does not pay by the measured step costs gets
// no proposals for kPauseSteps decode steps, then one probe token; while a draft model's
// probes fail, its pause doubles up to kMaxPauseSteps.
constexpr int kPauseSteps = 8;
constexpr int kMaxPauseSteps = 128;

int64_t mem_available() {
  std::ifstream f("/proc/meminfo");
  std::string key, unit;
  int64_t kb;
  while (f >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return 0;
}

// Bytes of a model path: the file, or the files of a directory's top level.
int64_t path_bytes(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) throw Error("cannot open draft model " + path);
  return S_ISREG(st.st_mode) ? static_cast<int64_t>(st.st_size) : 0;
}

}  // namespace

Speculator::Speculator(const SpeculativeConfig& cfg, Model& target, int n_kv_tokens, int block_size,
                       int max_batch_tokens)
    : cfg_(cfg) {
  validate_speculative_config(cfg_);
  if (cfg_.method == "ngram") {
    proposer_ = std::make_unique<NgramProposer>(cfg_.ngram_min, cfg_.ngram_max);
  } else {
    // Weights (read into memory at load) and the draft's KV cache must fit what is free
    // now, after the target took its share.
    const int64_t weights = path_bytes(cfg_.draft_model);
    const int64_t avail = mem_available();
    if (avail > 0 && weights > avail)
      throw Error("the draft model " + cfg_.draft_model + " (" + std::to_string(weights >> 20) +
                  " MiB) does not fit in the available memory (" + std::to_string(avail >> 20) +
                  " MiB)");
    std::unique_ptr<Model> draft = load_model(cfg_.draft_model, cfg_.draft_load);
    const ModelConfig& dc = draft->config();
    int64_t kv_tokens = n_kv_tokens;
    const int64_t per_token = static_cast<int64_t>(
        KVCache::bytes_per_token(dc.n_layer, dc.kv_dim(), draft->kv_cache_type()));
    if (cfg_.draft_kv_cache_bytes > 0) kv_tokens = cfg_.draft_kv_cache_bytes / per_token;
    const int64_t kv_bytes = kv_tokens * per_token;
    const int64_t avail_after = mem_available();
    if (avail_after > 0 && kv_bytes > avail_after)
      throw Error("the draft model's KV cache (" + std::to_string(kv_bytes >> 20) + " MiB for " +
                  std::to_string(kv_tokens) + " tokens) does not fit in the available memory (" +
                  std::to_string(avail_after >> 20) + " MiB)");
    if (kv_tokens < block_size) throw Error("the draft model's KV cache holds no block");
    proposer_ = std::make_unique<DraftProposer>(
        std::move(draft), target, static_cast<int>(kv_tokens), block_size, max_batch_tokens);
  }
  std::fprintf(stderr,
               "speculative decoding: %s%s%s, up to %d tokens per step%s, disabled above %d "
               "decoding sequences\n",
               cfg_.method.c_str(), cfg_.method == "draft" ? " " : "",
               cfg_.method == "draft" ? cfg_.draft_model.c_str() : "", cfg_.num_speculative_tokens,
               cfg_.adaptive ? " (adaptive)" : "",
               cfg_.disable_by_batch_size > 0 ? cfg_.disable_by_batch_size : 1 << 30);
}

Speculator::~Speculator() = default;

void Speculator::propose(const std::vector<Candidate>& cands, int n_decoding) {
  const bool disabled = cfg_.disable_by_batch_size > 0 && n_decoding > cfg_.disable_by_batch_size;
  // A draft model has to read a sequence's whole context before it can propose for it. A
  // sequence that begins decoding in a batch too large to speculate never gets a draft:
  // catching it up later (when the batch thins out, near its end) costs a prefill of its
  // context on the draft for the few tokens left (bench/spec_compare.sh serve at
  // concurrency 8: 13-24% slower with that catch-up).
  if (cfg_.method == "draft")
    for (const Candidate& c : cands) {
      const auto [it, fresh] = seqs_.try_emplace(c.req->id);
      if (fresh) it->second.draft = !disabled;
    }
  if (disabled) {
    for (const Candidate& c : cands) c.req->spec_tokens.clear();
    std::lock_guard<std::mutex> lock(mu_);
    ++m_.skipped_batch;
    return;
  }
  const int K = cfg_.num_speculative_tokens;
  slots_.clear();
  for (const Candidate& c : cands) {
    c.req->spec_tokens.clear();
    if (cfg_.method == "draft" && !seqs_[c.req->id].draft) continue;
    int k = K;
    if (cfg_.adaptive) {
      SeqState& st = seqs_[c.req->id];
      if (st.pause > 0) {
        --st.pause;
        continue;
      }
      // The length that maximizes expected tokens per second at this sequence's acceptance
      // and the measured step costs. Until a plain step of this batch size has been timed,
      // none: that step is the baseline every proposal length is weighed against.
      k = cost_.best_k(st.succ / st.trials, K, static_cast<int>(cands.size()));
      if (k < 0) continue;
      if (k > 0) {
        st.backoff = kPauseSteps;
      } else if (st.probe) {
        k = 1;  // the probe after a pause
        st.probe = false;
      } else {
        // Verifying costs more than it brings at this acceptance: pause, then probe with
        // one token, since acceptance changes with the text. A draft's pauses double while
        // its probes keep failing (a probe costs it a catch-up over the paused tokens); an
        // n-gram probe costs one token's verification, and copied text can start any time.
        st.pause = st.backoff;
        if (cfg_.method == "draft") st.backoff = std::min(2 * st.backoff, kMaxPauseSteps);
        st.probe = true;
        continue;
      }
    }
    k = std::min(k, c.max_k);
    if (k < 1) continue;
    ProposalSlot s;
    s.req = c.req;
    s.sampling = c.sampling;
    s.k = k;
    slots_.push_back(std::move(s));
  }
  if (slots_.empty()) return;
  proposer_->propose(slots_);
  for (size_t i = 0; i < slots_.size(); ++i) {
    ProposalSlot& s = slots_[i];
    Request* r = const_cast<Request*>(s.req);
    r->spec_tokens = s.tokens;
    if (!s.q.empty()) q_[r->id] = std::move(s.q);
  }
}

std::vector<int32_t> Speculator::verify(Request& r, Sampler& sampler, float* rows, int n_vocab) {
  static const std::vector<std::vector<TokenProb>> kNone;
  auto qi = q_.find(r.id);
  const auto& q = qi == q_.end() ? kNone : qi->second;
  std::vector<int32_t> out = verify_proposals(sampler, rows, n_vocab, r.tokens, r.spec_tokens,
                                              q.size() >= r.spec_tokens.size() ? q : kNone);
  const int k = static_cast<int>(r.spec_tokens.size());
  const int a = static_cast<int>(out.size()) - 1;
  if (qi != q_.end()) q_.erase(qi);
  if (cfg_.adaptive) {
    SeqState& st = seqs_[r.id];
    st.succ = 0.7 * st.succ + a;
    st.trials = 0.7 * st.trials + a + (a < k ? 1 : 0);
  }
  std::lock_guard<std::mutex> lock(mu_);
  m_.proposed += k;
  m_.accepted += a;
  ++m_.rounds;
  m_.emitted += a + 1;
  return out;
}

void Speculator::commit(KVCacheManager& kvm, Request& r) {
  // Valid K/V: every token but the last emitted one.
  kvm.rollback(r, r.n_tokens() - 1);
  r.spec_tokens.clear();
  kvm.cache_full_blocks(r);
}

void Speculator::release(uint64_t req_id) {
  proposer_->release(req_id);
  seqs_.erase(req_id);
  q_.erase(req_id);
}

SpeculativeMetrics Speculator::metrics() const {
  std::lock_guard<std::mutex> lock(mu_);
  return m_;
}

}  // namespace tessera
