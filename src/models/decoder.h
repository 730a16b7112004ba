// A configurable pre-norm decoder shared by the families that differ from Llama only in a
// few places. Each family's file (qwen3.cpp, gemma3.cpp, phi3.cpp, moe.cpp, ...) fills a
// DecoderFeatures with what makes it itself and hands it to DecoderModel, whose forward
// pass is
//
//   x = embed(tokens)                                  (* sqrt(n_embd): embd_scale)
//   for each layer:
//     q, k, v = Wq·n(x), Wk·n(x), Wv·n(x)              (fused Wqkv; biases when present)
//     q, k = n_head(q), n_head(k)                      (qk_norm: RMSNorm per head)
//     q, k = rope(q), rope(k)                          (skipped with ALiBi)
//     a = Wo · attn(q, k, v)                           (sliding window on SWA layers)
//     x += n_post(a)                                   (post_norms)
//     f = ffn(n(x))                                    (SwiGLU / GeGLU / fused / experts)
//     x += n_post(f)                                   (post_norms)
//   logits = Wout · n(x)                               (soft-capped: final_softcap)
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/model.h"

namespace tessera {

enum class FfnKind {
  SWIGLU,        // Wdown · (silu(Wgate·x) * Wup·x)
  GEGLU,         // Wdown · (gelu_tanh(Wgate·x) * Wup·x)
  SWIGLU_FUSED,  // ffn_up holds [gate; up] stacked: 2*n_ff rows (Phi-3, ChatGLM, GLM-4)
  MOE,           // top-k of n_expert SwiGLU experts (+ an optional gated shared expert)
};

struct DecoderFeatures {
  bool rope_neox = false;   // RoPE pairs (i, i + n_rot/2) instead of (2i, 2i+1)
  bool embd_scale = false;  // scale the embeddings by sqrt(n_embd) (Gemma)
  bool qk_norm = false;     // attn_q_norm / attn_k_norm: RMSNorm per head before RoPE
  bool post_norms = false;  // post_attention_norm / post_ffw_norm on the block outputs
  FfnKind ffn = FfnKind::SWIGLU;
  float attn_scale = 0.0f;  // 0: 1/sqrt(head_dim)
  float final_softcap = 0.0f;
  float alibi_max_bias = 0.0f;  // > 0: ALiBi attention bias and no RoPE (Baichuan 13B)

  // Sliding-window attention: layers with swa_layers[l] see the last n_swa positions and
  // use rope_base_swa (0: the global base). Empty swa_layers: no sliding window.
  int n_swa = 0;
  std::vector<bool> swa_layers;
  float rope_base_swa = 0.0f;

  // Mixture of experts (ffn == MOE).
  int n_expert = 0;
  int n_expert_used = 0;
  int n_ff_exp = 0;    // rows of each expert's gate/up
  int n_ff_shexp = 0;  // rows of the shared expert (0: none)
  MoeRouting routing;
};

// The decoder for one family, built from its features. Throws tessera::Error for missing
// or mis-shaped tensors.
std::unique_ptr<Model> make_decoder_model(std::unique_ptr<gguf::Source> file,
                                          const std::string& arch, const ModelOptions& opts,
                                          const DecoderFeatures& features);

}  // namespace tessera
