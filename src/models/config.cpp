#include "models/config.h"

#include "core/error.h"
#include "loader/gguf.h"

namespace tessera {

namespace {

int64_t require_int(const gguf::Source& f, const std::string& key) {
  auto v = f.get_int(key);
  if (!v) throw Error("model metadata is missing '" + key + "'");
  return *v;
}

int checked(int64_t v, const std::string& key, int64_t lo, int64_t hi) {
  if (v < lo || v > hi)
    throw Error("model metadata '" + key + "' = " + std::to_string(v) + " is out of range [" +
                std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return static_cast<int>(v);
}

}  // namespace

ModelConfig read_model_config(const gguf::Source& f, const std::string& arch) {
  ModelConfig c;
  c.arch = arch;
  c.name = f.get_string("general.name").value_or("");
  const std::string p = arch + ".";
  c.n_embd = checked(require_int(f, p + "embedding_length"), p + "embedding_length", 1, 1 << 20);
  c.n_layer = checked(require_int(f, p + "block_count"), p + "block_count", 1, 4096);
  c.n_ff =
      checked(require_int(f, p + "feed_forward_length"), p + "feed_forward_length", 1, 1 << 22);
  c.n_head =
      checked(require_int(f, p + "attention.head_count"), p + "attention.head_count", 1, 4096);
  c.n_head_kv = checked(f.get_int(p + "attention.head_count_kv").value_or(c.n_head),
                        p + "attention.head_count_kv", 1, c.n_head);
  if (c.n_head % c.n_head_kv != 0)
    throw Error("attention.head_count (" + std::to_string(c.n_head) +
                ") is not a multiple of head_count_kv (" + std::to_string(c.n_head_kv) + ")");
  c.head_dim = checked(f.get_int(p + "attention.key_length").value_or(c.n_embd / c.n_head),
                       p + "attention.key_length", 1, 4096);
  const int64_t v_len = f.get_int(p + "attention.value_length").value_or(c.head_dim);
  if (v_len != c.head_dim) throw Error("attention.value_length != key_length is not supported");
  c.n_ctx_train =
      checked(f.get_int(p + "context_length").value_or(2048), p + "context_length", 1, 1 << 24);
  c.rms_eps =
      static_cast<float>(f.get_float(p + "attention.layer_norm_rms_epsilon").value_or(1e-5));
  if (!(c.rms_eps > 0.0f && c.rms_eps < 1.0f)) throw Error("layer_norm_rms_epsilon out of range");

  c.n_rot = checked(f.get_int(p + "rope.dimension_count").value_or(c.head_dim),
                    p + "rope.dimension_count", 2, c.head_dim);
  if (c.n_rot % 2 != 0) throw Error("rope.dimension_count must be even");
  c.rope_freq_base = static_cast<float>(f.get_float(p + "rope.freq_base").value_or(10000.0));
  if (!(c.rope_freq_base > 1.0f)) throw Error("rope.freq_base must be > 1");

  // Scaling: rope.scaling.type + factor (newer files) or rope.scale_linear (older files).
  std::string type = f.get_string(p + "rope.scaling.type").value_or("");
  double factor = f.get_float(p + "rope.scaling.factor").value_or(0.0);
  if (type.empty()) {
    if (auto lin = f.get_float(p + "rope.scale_linear"); lin && *lin != 1.0) {
      type = "linear";
      factor = *lin;
    } else {
      type = "none";
    }
  }
  if (type == "none" || factor == 0.0 || factor == 1.0) {
    c.rope_scaling = RopeScaling::NONE;
  } else if (type == "linear") {
    c.rope_scaling = RopeScaling::LINEAR;
  } else if (type == "yarn") {
    c.rope_scaling = RopeScaling::YARN;
  } else {
    throw Error("unsupported rope.scaling.type '" + type + "'");
  }
  if (c.rope_scaling != RopeScaling::NONE && !(factor > 0.0))
    throw Error("rope.scaling.factor must be > 0");
  c.rope_scaling_factor = c.rope_scaling == RopeScaling::NONE ? 1.0f : static_cast<float>(factor);
  c.rope_n_ctx_orig = static_cast<int>(
      f.get_int(p + "rope.scaling.original_context_length").value_or(c.n_ctx_train));
  c.yarn_beta_fast =
      static_cast<float>(f.get_float(p + "rope.scaling.yarn_beta_fast").value_or(32.0));
  c.yarn_beta_slow =
      static_cast<float>(f.get_float(p + "rope.scaling.yarn_beta_slow").value_or(1.0));
  return c;
}

}  // namespace tessera
