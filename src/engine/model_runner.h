// The model runner: the one place where sequences become a forward batch, the model runs
// and the next tokens are sampled. The engine hands it a scheduler output and applies what
// comes back (Engine's output processor); the one-sequence scorer (perplexity, logits,
// latency bench) hands it chunks directly.
//
//   SchedulerOutput --run()--> SeqChunk per item --forward()--> logits rows --> sampled tokens
//
// A chunk computes positions [start, start + n_new) of one sequence and asks for the logits
// of positions [out_begin, out_end) inside it: the last one for a decode or the end of a
// prompt, every one for scoring, and the last k + 1 for verifying k proposed tokens
// (speculative decoding). Served across processes, rank 0's runner hands each batch to a
// StepPublisher before the model runs it, and the other ranks run the same forward()
// (engine/distributed_step.h); the engine above it does not change.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/request.h"
#include "engine/scheduler.h"
#include "models/model.h"

namespace tessera {
class Speculator;
class StepPublisher;
}  // namespace tessera

namespace tessera {

struct SeqChunk {
  const int32_t* tokens = nullptr;  // the sequence's tokens; [start, start + n_new) are read
  int start = 0, n_new = 0;
  int n_prompt = 0;  // the sequence's prompt length (decides the attention order)
  const int32_t* block_table = nullptr;  // logical block -> physical block
  int out_begin = 0, out_end = 0;        // positions whose logits are wanted (may be empty)
};

// Per item of the scheduler output, in its order: the tokens sampled (empty when the item
// did not reach the end of its sequence). One token today; several once drafts are verified.
struct RunnerOutput {
  std::vector<std::vector<GeneratedToken>> sampled;
};

class ModelRunner {
 public:
  // `kv` holds blocks of `block_size` tokens; the runner writes K/V through the chunks'
  // block tables and never allocates blocks itself.
  ModelRunner(Model& model, KVCache& kv, int block_size);

  // One forward step over the chunks (each of a different sequence); returns the logits
  // [sum of (out_end - out_begin), n_vocab], chunk by chunk in position order, valid until
  // the next call.
  float* forward(const std::vector<SeqChunk>& chunks);

  // Runs the scheduled items and samples the next token of each item with `sample` set,
  // with the request's sampler (penalties, bias, then the sampler chain) and, when asked,
  // the log-probabilities of the model's own distribution.
  RunnerOutput run(const SchedulerOutput& out);

  // The attention order of a batch row, decided per request so that a token's numbers never
  // depend on the rest of its batch: the rows of a prompt of kTiledPromptMin tokens or more
  // take llama.cpp's tiled order (AttentionBatch::prompt_tiled).
  static bool tiled_row(int pos, int n_prompt) {
    return pos < n_prompt && n_prompt >= kTiledPromptMin;
  }

  Model& model() { return model_; }
  // Speculative decoding: items whose request has spec_tokens verify them (k + 1 logit
  // rows) through `s` and may emit several tokens.
  void set_speculator(Speculator* s) { spec_ = s; }
  // Rank 0 of a distributed server: every forward() is published first. Null: one process.
  void set_publisher(StepPublisher* p) { publisher_ = p; }

 private:
  GeneratedToken sample(Request& r, float* logits);
  int32_t draw(Request& r, float* logits, int n_vocab);
  // Log-probabilities of `g.token` (and the top k) in the raw logits row `lg`.
  void fill_logprobs(const float* lg, int k, GeneratedToken& g);
  // Verifies r.spec_tokens against rows [k + 1, n_vocab]; the emitted tokens.
  std::vector<GeneratedToken> verify(Request& r, float* rows);

  Speculator* spec_ = nullptr;
  StepPublisher* publisher_ = nullptr;
  std::vector<std::vector<int32_t>> spec_seqs_;  // per item: tokens + proposals
  std::vector<float> raw_;                       // raw rows kept for logprobs

  Model& model_;
  KVCache& kv_;
  int block_size_;
  std::vector<int32_t> tokens_, pos_, seq_of_, slots_, out_rows_;
  std::vector<uint8_t> tiled_;
  std::vector<const int32_t*> tables_;
  std::vector<float> logits_, scratch_;
  std::vector<int32_t> idx_;
  std::vector<SeqChunk> chunks_;
};

}  // namespace tessera
