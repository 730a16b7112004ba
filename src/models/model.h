// A loaded model: weights (views into the GGUF mapping), its tokenizer, and a forward
// pass over a batch of tokens from one or more sequences.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "kv/kv_cache.h"
#include "models/config.h"
#include "tokenizer/tokenizer.h"

namespace tessera {
namespace gguf {
class File;
class Source;
}  // namespace gguf
namespace dist {
class Communicator;
}  // namespace dist

// One forward step. Token i of the batch is tokens[i] at position pos[i] of sequence
// seq_of[i]; its K/V are written to slots[i] and it attends through block_tables.
// Logits are produced for the batch rows listed in out_rows, in that order.
struct ForwardBatch {
  int n_tokens = 0;
  const int32_t* tokens = nullptr;
  const int32_t* pos = nullptr;
  const int32_t* seq_of = nullptr;
  const int32_t* slots = nullptr;
  const int32_t* const* block_tables = nullptr;
  // [n_tokens] or null: 1 for the rows of a long prompt (AttentionBatch::prompt_tiled). A
  // per-request choice, so a token's numbers never depend on the rest of its batch.
  const uint8_t* prompt_tiled = nullptr;
  int n_out = 0;
  const int32_t* out_rows = nullptr;
};

struct ModelOptions {
  int n_threads = 0;  // <= 0: automatic
  // Convert F32/F16/BF16 weight matrices to this type while loading ("" keeps them as
  // stored): q8_0, q4_0, q4_1, q5_0, q5_1, f16, bf16, f32. Norms and biases stay F32.
  std::string quantization;
  // "auto" (a GGUF file, or a Hugging Face directory), "gguf", "hf", or "dummy": build
  // the model from an HF config.json with random weights (dummy_seed; F16 or the
  // quantization type).
  std::string load_format = "auto";
  uint64_t dummy_seed = 0;
  // Storage of the KV cache: "f16" (default, as llama.cpp) or "f32" (exact attention).
  std::string kv_cache_type = "f16";
  // Let the backend keep matrices in its own layouts (the CPU backend: Q4_0 / Q8_0 rows
  // interleaved in groups of 8 where the CPU has the kernels, AVX-512 VNNI; faster decode,
  // same results). --no-repack turns it off.
  bool repack = true;
  // The backend that runs the model (make_backend): "cpu" or "ref" (--backend).
  std::string backend = "cpu";
  // Tensor and pipeline parallelism: with comm->size() = T * P > 1 (P =
  // pipeline_parallel_size) rank r of comm is TP rank r % T of pipeline stage r / T: it
  // holds the layers of stage r / T (contiguous, as equal as possible; the embeddings on the
  // first stage, the output norm and head on the last) and, of those, shard r % T of the
  // attention heads and feed-forward rows. Every rank of comm runs the same forward passes
  // in step, with the same batch, and every rank gets the whole logits. Null: the whole
  // model. Not owned; outlives the model.
  dist::Communicator* comm = nullptr;
  // P, the number of pipeline stages (--pipeline-parallel-size); comm->size() must be a
  // multiple of it.
  int pipeline_parallel_size = 1;
  // How the ranks split Wo and Wdown. false (Megatron): by input columns, each rank's
  // partial products summed by an all-reduce (2 collectives per layer; the split sums move
  // the logits by rounding). true: by output rows, their inputs gathered whole before and
  // their outputs after (4 all-gathers per layer): every number is computed as one process
  // computes it, so the logits are one process's bit for bit.
  bool tp_exact = false;
};

// Sizes of the weights as the model holds them (after any load-time conversion).
struct WeightStats {
  uint64_t n_params = 0;  // elements of every weight tensor
  uint64_t n_bytes = 0;   // bytes of every weight tensor
  // Weight-matrix bytes one decode step (one token) reads: every layer's matrices, the
  // output matrix (the embedding when tied) and one row of the token embedding. Norms
  // and biases are left out. The numerator of the decode roofline.
  uint64_t decode_bytes = 0;
};

class Model {
 public:
  virtual ~Model();
  const ModelConfig& config() const { return config_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  Backend& backend() { return *backend_; }
  const gguf::Source& file() const { return *file_; }
  const WeightStats& weight_stats() const { return weight_stats_; }

  // logits: [batch.n_out, n_vocab]
  virtual void forward(const ForwardBatch& batch, KVCache& kv, float* logits) = 0;
  // The same pass without the language-model head: hidden[batch.n_out, n_embd] = the
  // final hidden states (after the output norm) of the rows out_rows, what decoders used
  // as embedding models pool. Throws tessera::Error for models without one.
  virtual void forward_hidden(const ForwardBatch& batch, KVCache& kv, float* hidden);
  // A KV cache of n_blocks blocks of block_size tokens for this model.
  std::unique_ptr<KVCache> make_kv_cache(int n_blocks, int block_size);
  DType kv_cache_type() const { return kv_type_; }
  void set_kv_cache_type(DType t) { kv_type_ = t; }
  // K/V values per token and layer that this process stores: config().kv_dim(), or its
  // share of the KV heads under tensor parallelism.
  int kv_dim_local() const { return kv_dim_local_ > 0 ? kv_dim_local_ : config_.kv_dim(); }
  // Layers whose KV cache this process stores: config().n_layer, or its pipeline stage's.
  int n_layer_local() const { return n_layer_local_ > 0 ? n_layer_local_ : config_.n_layer; }
  // Rows of the output head (vocabulary entries) this process holds: config().n_vocab, its
  // share under tensor parallelism, 0 on a pipeline stage without the head.
  int64_t head_rows_local() const {
    return head_rows_local_ >= 0 ? head_rows_local_ : config_.n_vocab;
  }

 protected:
  ModelConfig config_;
  std::unique_ptr<gguf::Source> file_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<Backend> backend_;
  DType kv_type_ = DType::F16;
  WeightStats weight_stats_;
  int kv_dim_local_ = 0;          // 0: config_.kv_dim()
  int n_layer_local_ = 0;         // 0: config_.n_layer
  int64_t head_rows_local_ = -1;  // -1: config_.n_vocab
};

// Opens a GGUF file or a Hugging Face model directory (see ModelOptions::load_format) and
// builds the model for its architecture. Throws tessera::Error
// for unreadable files, unknown architectures and missing or mis-shaped tensors.
std::unique_ptr<Model> load_model(const std::string& path, const ModelOptions& opts = {});

// Architectures load_model accepts.
std::vector<std::string> supported_architectures();

// What each architecture covers, for `tessera info --archs`.
struct ArchitectureInfo {
  std::string name;                      // general.architecture
  std::string families;                  // model families published in it
  std::string features;                  // what the implementation handles
  std::vector<std::string> hf_archs;     // config.json "architectures" that load as it
  std::vector<std::string> dummy_archs;  // of those, the shapes --load-format dummy builds
};
std::vector<ArchitectureInfo> architecture_table();

}  // namespace tessera
