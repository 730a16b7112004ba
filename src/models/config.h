// Hyper-parameters of a decoder-only transformer, read from GGUF metadata
// (`<arch>.embedding_length`, `<arch>.attention.head_count`, ...).
#pragma once
#include <cstdint>
#include <string>

namespace tessera {
namespace gguf {
class File;
class Source;
}  // namespace gguf

enum class RopeScaling { NONE, LINEAR, YARN };

struct ModelConfig {
  std::string arch;  // general.architecture
  std::string name;  // general.name ("" if absent)
  int n_vocab = 0;
  int n_ctx_train = 0;  // context length the model was trained with
  int n_embd = 0;
  int n_layer = 0;
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim = 0;  // attention.key_length, default n_embd / n_head
  int n_ff = 0;
  float rms_eps = 1e-5f;

  int n_rot = 0;  // rope.dimension_count, default head_dim
  bool rope_neox = false;
  float rope_freq_base = 10000.0f;
  RopeScaling rope_scaling = RopeScaling::NONE;
  float rope_scaling_factor = 1.0f;
  int rope_n_ctx_orig = 0;
  float yarn_beta_fast = 32.0f;
  float yarn_beta_slow = 1.0f;

  int kv_dim() const { return n_head_kv * head_dim; }
  int q_dim() const { return n_head * head_dim; }
};

// Reads the common keys for architecture `arch`. Throws tessera::Error when a required
// key is missing or a value is out of range.
ModelConfig read_model_config(const gguf::Source& f, const std::string& arch);

}  // namespace tessera
