// Runs one sequence through a model: the KV cache holds a single sequence whose block
// table is the identity (block i -> physical block i), so position p lives in slot p.
// Used by the CLI's `run` and `perplexity`; serving uses the scheduler instead.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "models/model.h"

namespace tessera {

class SequenceRunner {
 public:
  static constexpr int kBlockSize = 16;
  SequenceRunner(Model& model, int n_ctx);

  int n_ctx() const { return n_ctx_; }
  int n_past() const { return n_past_; }
  void reset() { n_past_ = 0; }

  // Appends tokens at positions n_past .. n_past+n-1, processed in batches of at most
  // n_batch. logits receives one row per index in `want` (indices into `tokens`, ascending),
  // each [n_vocab]. Throws tessera::Error when the context would overflow.
  void eval(const std::vector<int32_t>& tokens, const std::vector<int32_t>& want, float* logits,
            int n_batch);

 private:
  Model& model_;
  int n_ctx_;
  int n_past_ = 0;
  std::unique_ptr<KVCache> kv_;
  std::vector<int32_t> table_;
  std::vector<int32_t> pos_, seq_, out_;
  std::vector<uint8_t> tiled_;
};

}  // namespace tessera
