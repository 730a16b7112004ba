// Embedding and scoring with a loaded model: which task a model serves, the settings it
// serves it with (pooling, normalization, longest input), and the runner that turns a set
// of tokenized inputs into vectors with one forward pass.
//
//   task EMBED: a vector per input — the last hidden states pooled (mean / first token /
//               last token); an encoder (BERT) or any decoder (--task embed)
//   task SCORE: classifier logits per input — a cross-encoder (BertForSequenceClassification)
//               over "[CLS] query [SEP] document [SEP]"
//
// Settings come from the model's own files (sentence-transformers' pooling and Normalize
// modules, max_seq_length; GGUF {arch}.pooling_type) and may be overridden. The runner keeps
// no state between calls: an encoder needs no KV cache; a decoder gets a scratch cache that
// each pass overwrites.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kv/kv_cache.h"
#include "models/model.h"

namespace tessera {

enum class EmbedTask { EMBED, SCORE };
enum class Pooling { MEAN, CLS, LAST };

const char* pooling_name(Pooling p);  // "mean", "cls", "last"
// "mean" / "cls" / "last"; throws tessera::Error for other names.
Pooling parse_pooling(const std::string& name);

// What the command line asks for; empty / nullopt / 0 keep the model's own choice.
struct EmbedOptions {
  std::string task = "auto";      // auto | embed | score (generate is not this layer's)
  std::string pooling;            // mean | cls | last
  std::optional<bool> normalize;  // L2-normalize embeddings
  int max_model_len = 0;          // longest input in tokens
  int max_batch_tokens = 0;       // tokens per forward pass (0: max(2048, max_model_len))
  int max_batch_seqs = 256;       // inputs per forward pass
};

struct EmbedSettings {
  EmbedTask task = EmbedTask::EMBED;
  Pooling pooling = Pooling::CLS;
  bool normalize = true;
  bool sigmoid = true;  // SCORE: the score is sigmoid(logit) (false: the logit itself)
  int max_len = 512;
  int max_batch_tokens = 2048;
  int max_batch_seqs = 256;
};

// The task `model` serves under --task `task` ("auto", "embed", "score", "generate"), or
// nullopt when it generates text. Throws tessera::Error when the model cannot serve the
// task asked for (an encoder cannot generate; a model without a classification head cannot
// score).
std::optional<EmbedTask> embedding_task(const Model& model, const std::string& task);

// The settings for serving `task` with `model`. Throws tessera::Error for impossible
// options (an input longer than the model's positions, a batch smaller than one input).
EmbedSettings resolve_embed_settings(const Model& model, EmbedTask task, const EmbedOptions& o);

// One tokenized input: tokens, and segment ids for cross-encoder pairs (empty: all 0).
struct EmbedInput {
  std::vector<int32_t> tokens;
  std::vector<int32_t> types;
};

class EmbeddingRunner {
 public:
  EmbeddingRunner(Model& model, const EmbedSettings& s);
  ~EmbeddingRunner();
  EmbeddingRunner(const EmbeddingRunner&) = delete;
  EmbeddingRunner& operator=(const EmbeddingRunner&) = delete;

  const EmbedSettings& settings() const { return s_; }
  const Model& model() const { return model_; }
  // Floats per output: n_embd (EMBED) or the classifier's labels (SCORE).
  int dim() const { return dim_; }
  // Throws tessera::Error naming the problem when `in` cannot be run (empty, too long,
  // token ids outside the vocabulary, segment ids the model does not have).
  void check(const EmbedInput& in) const;

  // One packed forward pass over inputs (at most max_batch_tokens tokens in all, at most
  // max_batch_seqs inputs, each passing check()); out[i] = input i's output: the pooled,
  // not yet normalized embedding, or the classifier logits.
  void run(std::span<const EmbedInput* const> inputs, std::vector<std::vector<float>>& out);

 private:
  void run_decoder(std::span<const EmbedInput* const> inputs, float* out);

  Model& model_;
  EmbedSettings s_;
  int dim_ = 0;
  std::unique_ptr<KVCache> kv_;  // decoders: scratch K/V of one pass (f32)
  std::vector<int32_t> tokens_, types_, seq_start_, pos_, seq_of_, slots_, out_rows_;
  std::vector<std::vector<int32_t>> tables_;
  std::vector<const int32_t*> table_ptrs_;
  std::vector<float> hidden_, pooled_;
};

// Post-processing of one embedding: keep the first `dims` values (Matryoshka truncation;
// 0 keeps all), then scale to unit L2 norm when `normalize` (as torch's F.normalize: a
// zero vector stays zero).
void finish_embedding(std::vector<float>& v, int dims, bool normalize);

}  // namespace tessera
