// A draft model proposes: a smaller model with the target's vocabulary runs k cheap
// decode steps per sequence, all sequences batched together, on its own paged KV cache.
//
// Per target sequence the draft keeps a mirror Request (tokens, n_computed, block table).
// A round first brings the mirror up to the target's verified tokens - the mirror is cut
// back to the longest common prefix (a KV rollback of the rejected proposals) and the
// missing tokens are computed, batched over all sequences - and then runs k - 1 more
// single-token steps, each sampling from the draft's distribution q with the request's
// own sampling settings (penalties, bias, top-k/top-p/min-p, temperature).
#pragma once
#include <memory>
#include <unordered_map>

#include "engine/kv_manager.h"
#include "spec/proposer.h"

namespace tessera {

class DraftProposer : public Proposer {
 public:
  // n_kv_tokens: the draft's KV pool size in tokens; max_batch_tokens: tokens per forward.
  // Throws tessera::Error when the draft's vocabulary differs from the target's.
  DraftProposer(std::unique_ptr<Model> draft, const Model& target, int n_kv_tokens, int block_size,
                int max_batch_tokens);
  ~DraftProposer() override;
  const char* name() const override { return "draft"; }
  void propose(std::vector<ProposalSlot>& slots) override;
  void release(uint64_t req_id) override;

  const Model& model() const { return *draft_; }

  // Throws tessera::Error unless `draft` and `target` have the same vocabulary (size,
  // every token's text, BOS/EOS).
  static void check_vocabulary(const Model& draft, const Model& target);

 private:
  struct State;
  // Runs one forward over `rows` (token i of seq i's mirror at positions [start, end)),
  // giving logits for each segment's last token.
  struct Segment {
    State* st;
    int start, end;
  };
  void run(const std::vector<Segment>& segs, std::vector<float>& logits);

  std::unique_ptr<Model> draft_;
  std::unique_ptr<KVCache> kv_;
  std::unique_ptr<KVCacheManager> kvm_;
  int block_size_;
  int max_batch_tokens_;
  std::unordered_map<uint64_t, std::unique_ptr<State>> states_;
  std::vector<int32_t> tokens_, pos_, seq_of_, slots_, out_rows_;
  std::vector<const int32_t*> tables_;
  std::vector<float> part_;
};

}  // namespace tessera
