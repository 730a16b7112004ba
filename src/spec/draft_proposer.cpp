#include "spec/draft_proposer.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace tessera {

struct DraftProposer::State {
  Request r;  // tokens: the target's verified tokens, then this round's proposals
  std::unique_ptr<Sampler> sampler;
};

void DraftProposer::check_vocabulary(const Model& draft, const Model& target) {
  const Tokenizer& a = draft.tokenizer();
  const Tokenizer& b = target.tokenizer();
  const int na = draft.config().n_vocab, nb = target.config().n_vocab;
  if (na != nb || a.n_vocab() != b.n_vocab())
    throw Error("the draft model's vocabulary (" + std::to_string(na) +
                " tokens) differs from the target's (" + std::to_string(nb) +
                " tokens); speculative decoding needs the same tokenizer");
  for (int32_t i = 0; i < a.n_vocab(); ++i)
    if (a.token_text(i) != b.token_text(i))
      throw Error("the draft model's vocabulary differs from the target's at token " +
                  std::to_string(i) + " ('" + a.token_text(i) + "' vs '" + b.token_text(i) +
                  "'); speculative decoding needs the same tokenizer");
  if (a.bos_id() != b.bos_id() || a.eos_id() != b.eos_id())
    throw Error("the draft model's BOS/EOS tokens differ from the target's");
}

DraftProposer::DraftProposer(std::unique_ptr<Model> draft, const Model& target, int n_kv_tokens,
                             int block_size, int max_batch_tokens)
    : draft_(std::move(draft)), block_size_(block_size), max_batch_tokens_(max_batch_tokens) {
  check_vocabulary(*draft_, target);
  const int n_blocks = std::max(1, n_kv_tokens / block_size);
  kv_ = draft_->make_kv_cache(n_blocks, block_size);
  // No prefix caching: mirrors are short-lived and the target's cache already serves
  // shared prompts; a rolled-back block can then never be shared.
  kvm_ = std::make_unique<KVCacheManager>(n_blocks, block_size, /*prefix_caching=*/false);
}

DraftProposer::~DraftProposer() {
  for (auto& [id, st] : states_) kvm_->free(st->r);
}

void DraftProposer::release(uint64_t req_id) {
  auto it = states_.find(req_id);
  if (it == states_.end()) return;
  kvm_->free(it->second->r);
  states_.erase(it);
}

void DraftProposer::run(const std::vector<Segment>& segs, std::vector<float>& logits) {
  const int n_vocab = draft_->config().n_vocab;
  const int B = block_size_;
  logits.resize(segs.size() * static_cast<size_t>(n_vocab));
  // Pack segments into forwards of at most max_batch_tokens_ tokens; a segment may span
  // several forwards, its logits come from the one holding its last token.
  size_t seg = 0;
  int done_in_seg = 0;  // tokens of segs[seg] already packed
  while (seg < segs.size()) {
    tokens_.clear();
    pos_.clear();
    seq_of_.clear();
    slots_.clear();
    out_rows_.clear();
    tables_.clear();
    std::vector<size_t> out_segs;
    while (seg < segs.size() && static_cast<int>(tokens_.size()) < max_batch_tokens_) {
      const Segment& sg = segs[seg];
      const Request& r = sg.st->r;
      const int room = max_batch_tokens_ - static_cast<int>(tokens_.size());
      const int from = sg.start + done_in_seg;
      const int n = std::min(sg.end - from, room);
      const int seq = static_cast<int>(tables_.size());
      tables_.push_back(r.blocks.data());
      for (int p = from; p < from + n; ++p) {
        tokens_.push_back(r.tokens[p]);
        pos_.push_back(p);
        seq_of_.push_back(seq);
        slots_.push_back(r.blocks[p / B] * B + p % B);
      }
      if (from + n == sg.end) {
        out_rows_.push_back(static_cast<int32_t>(tokens_.size()) - 1);
        out_segs.push_back(seg);
        ++seg;
        done_in_seg = 0;
      } else {
        done_in_seg += n;
      }
    }
    ForwardBatch fb;
    fb.n_tokens = static_cast<int>(tokens_.size());
    fb.tokens = tokens_.data();
    fb.pos = pos_.data();
    fb.seq_of = seq_of_.data();
    fb.slots = slots_.data();
    fb.block_tables = tables_.data();
    fb.n_out = static_cast<int>(out_rows_.size());
    fb.out_rows = out_rows_.data();
    part_.resize(out_rows_.size() * static_cast<size_t>(n_vocab));
    draft_->forward(fb, *kv_, part_.data());
    for (size_t i = 0; i < out_segs.size(); ++i)
      std::memcpy(logits.data() + out_segs[i] * n_vocab, part_.data() + i * n_vocab,
                  sizeof(float) * n_vocab);
  }
}

void DraftProposer::propose(std::vector<ProposalSlot>& slots) {
  const int n_vocab = draft_->config().n_vocab;
  std::vector<State*> active;  // parallel to the slots that get proposals
  std::vector<ProposalSlot*> act_slots;
  for (ProposalSlot& s : slots) {
    s.tokens.clear();
    s.q.clear();
    auto& stp = states_[s.req->id];
    if (!stp) {
      stp = std::make_unique<State>();
      stp->r.id = s.req->id;
      SamplingParams sp = *s.sampling;
      // The draft's own stream of random numbers, reproducible when the request is seeded.
      if (sp.has_seed) sp.seed = sp.seed * 0x9e3779b97f4a7c15ull + 1;
      stp->sampler = std::make_unique<Sampler>(sp, n_vocab);
    }
    State& st = *stp;
    const std::vector<int32_t>& target = s.req->tokens;
    // Cut the mirror back to its common prefix with the target (drops rejected proposals).
    size_t common = 0;
    const size_t lim = std::min(st.r.tokens.size(), target.size());
    while (common < lim && st.r.tokens[common] == target[common]) ++common;
    const int keep = std::min(st.r.n_computed, static_cast<int>(common));
    st.r.spec_tokens.clear();
    kvm_->rollback(st.r, keep);
    st.r.tokens = target;
    st.r.n_prompt = s.req->n_prompt;
    // Room for the catch-up tokens and k - 1 proposals fed back.
    const int n_new = st.r.n_tokens() - st.r.n_computed + s.k - 1;
    if (!kvm_->allocate(st.r, n_new)) {
      kvm_->free(st.r);  // out of draft memory: no proposals, recompute later
      st.r.n_computed = 0;
      st.r.tokens.clear();
      continue;
    }
    active.push_back(&st);
    act_slots.push_back(&s);
  }
  if (active.empty()) return;

  std::vector<Segment> segs;
  std::vector<float> logits;
  std::vector<TokenProb> dist;
  std::vector<size_t> live(active.size());
  for (size_t i = 0; i < active.size(); ++i) live[i] = i;
  // Round 0: catch up (at least the last verified token); rounds 1..k-1: feed back d_j.
  for (int j = 0; !live.empty(); ++j) {
    segs.clear();
    for (size_t i : live) {
      State& st = *active[i];
      segs.push_back({&st, st.r.n_computed, st.r.n_tokens()});
    }
    run(segs, logits);
    std::vector<size_t> next;
    for (size_t n = 0; n < live.size(); ++n) {
      const size_t i = live[n];
      State& st = *active[i];
      ProposalSlot& s = *act_slots[i];
      st.r.n_computed = st.r.n_tokens();
      float* lg = logits.data() + n * static_cast<size_t>(n_vocab);
      int32_t d;
      if (st.sampler->greedy()) {
        d = st.sampler->sample(lg, st.r.tokens);
      } else {
        st.sampler->distribution(lg, st.r.tokens, dist);
        const double u = st.sampler->uniform();
        double cum = 0.0;
        d = dist.back().id;
        for (const auto& t : dist) {
          cum += t.p;
          if (u < cum) {
            d = t.id;
            break;
          }
        }
        s.q.push_back(dist);
      }
      s.tokens.push_back(d);
      st.r.tokens.push_back(d);
      if (static_cast<int>(s.tokens.size()) < s.k) next.push_back(i);
    }
    live.swap(next);
  }
}

}  // namespace tessera
