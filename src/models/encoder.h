// Encoder models (BERT family, GGUF architecture "bert"): bidirectional attention over whole
// sequences, no KV cache, no generation. Sequences of different lengths run together packed
// back to back (no padding); attention never crosses from one sequence into another.
//
//   x = LN(tok_embd[t] + position_embd[p] + token_types[type])     p: 0.. within a sequence
//   for each layer (post-LayerNorm):
//     x = LN(x + Wo · attn(Wq·x + bq, Wk·x + bk, Wv·x + bv))
//     x = LN(x + Wdown · gelu(Wup·x + bup) + bdown)
//   embedding: pool(x) over each sequence (mean, first = [CLS], or last token)
//   cross-encoder score: cls.output · tanh(cls · x[CLS] + b) + b   (tanh layer when present)
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "models/model.h"

namespace tessera {

// n_seqs whole sequences packed back to back: sequence s is tokens [seq_start[s],
// seq_start[s + 1]). Positions restart at 0 in each sequence.
struct EncodeBatch {
  int n_tokens = 0;
  const int32_t* tokens = nullptr;       // [n_tokens]
  const int32_t* token_types = nullptr;  // [n_tokens] segment ids, or null (all 0)
  int n_seqs = 0;
  const int32_t* seq_start = nullptr;  // [n_seqs + 1], seq_start[n_seqs] == n_tokens
};

class EncoderModel : public Model {
 public:
  // Encoders do not generate: throws tessera::Error.
  void forward(const ForwardBatch& batch, KVCache& kv, float* logits) override;

  // out[n_seqs, n_embd]: each sequence's last hidden states pooled.
  virtual void embed(const EncodeBatch& b, RowPool pool, float* out) = 0;
  // out[n_seqs, n_labels()]: classifier logits of each sequence (cross-encoders).
  virtual void classify(const EncodeBatch& b, float* out) = 0;

  int n_labels() const { return n_labels_; }            // 0: no classification head
  int n_token_types() const { return n_token_types_; }  // segment ids are < this
  int max_positions() const { return n_positions_; }    // longest sequence it can encode

 protected:
  int n_labels_ = 0;
  int n_token_types_ = 1;
  int n_positions_ = 0;
};

// The BERT encoder over GGUF's "bert" tensors. Throws tessera::Error for missing or
// mis-shaped tensors.
std::unique_ptr<Model> make_bert_model(std::unique_ptr<gguf::Source> file, const std::string& arch,
                                       const ModelOptions& opts);

}  // namespace tessera
