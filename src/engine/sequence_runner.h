// Runs one sequence through the model runner to score it (perplexity, `tessera logits`,
// the latency bench): the KV cache holds a single sequence whose block table is the
// identity (block i -> physical block i), so position p lives in slot p. Generation goes
// through the Engine instead.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/model_runner.h"
#include "models/model.h"

namespace tessera {

class SequenceRunner {
 public:
  static constexpr int kBlockSize = 16;
  SequenceRunner(Model& model, int n_ctx);

  int n_ctx() const { return n_ctx_; }
  int n_past() const { return n_past_; }
  void reset() { n_past_ = n_prompt_ = 0; }

  // Appends tokens at positions n_past .. n_past+n-1, processed in batches of at most
  // n_batch. logits receives one row per index in `want` (indices into `tokens`, ascending),
  // each [n_vocab]. Throws tessera::Error when the context would overflow. The tokens of the
  // first call after a reset are the sequence's prompt (they decide the attention order, as
  // for an engine request); later calls append to it like decode steps.
  void eval(const std::vector<int32_t>& tokens, const std::vector<int32_t>& want, float* logits,
            int n_batch);

 private:
  Model& model_;
  int n_ctx_;
  int n_past_ = 0;
  int n_prompt_ = 0;
  std::unique_ptr<KVCache> kv_;
  std::unique_ptr<ModelRunner> runner_;
  std::vector<int32_t> table_, seq_;
};

}  // namespace tessera
