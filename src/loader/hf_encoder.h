// Hugging Face encoder checkpoints and sentence-transformers directories, translated into
// the GGUF keys and tensor names llama.cpp's `bert` architecture uses (so `tessera convert`
// writes files llama.cpp loads):
//
//   BertModel, BertForMaskedLM, BertForSequenceClassification, RobertaModel,
//   RobertaForSequenceClassification  ->  general.architecture "bert"
//
//   embeddings.{word,position,token_type}_embeddings -> token_embd, position_embd, token_types
//   embeddings.LayerNorm                  -> token_embd_norm
//   encoder.layer.N.attention.self.{query,key,value}   -> blk.N.attn_{q,k,v}
//   encoder.layer.N.attention.output.{dense,LayerNorm} -> blk.N.attn_output, attn_output_norm
//   encoder.layer.N.intermediate.dense    -> blk.N.ffn_up
//   encoder.layer.N.output.{dense,LayerNorm} -> blk.N.ffn_down, layer_output_norm
//   classification head: BERT's pooler.dense (+ tanh) -> cls, classifier -> cls.output;
//   RoBERTa's classifier.dense -> cls, classifier.out_proj -> cls.output
//
// RoBERTa numbers positions from padding_idx + 1: the first pad_token_id + 1 rows of its
// position table are dropped (as llama.cpp's converter does), so positions start at 0.
// 1-D tensors become F32 copies; matrices stay in the mapped safetensors.
//
// sentence-transformers files, for encoders and decoders alike:
//   modules.json + <pooling dir>/config.json -> <arch>.pooling_type (llama.cpp's values)
//   a Normalize module                       -> tessera.embedding.normalize
//   sentence_bert_config.json max_seq_length -> tessera.embedding.max_seq_length
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "loader/memory_source.h"

namespace tessera::hf {

// Metadata keys Tessera adds for embedding models (llama.cpp ignores them).
inline constexpr const char* kEmbedNormalizeKey = "tessera.embedding.normalize";
inline constexpr const char* kEmbedMaxLenKey = "tessera.embedding.max_seq_length";
// "sigmoid" or "identity": how a one-label classifier's logit becomes a score.
inline constexpr const char* kScoreActivationKey = "tessera.classifier.activation";

// The encoder architectures open_hf_directory accepts.
std::vector<std::string> encoder_architectures();
bool is_encoder_architecture(const std::string& hf_arch);

// Fills `src` from the encoder checkpoint in `dir`: general.*, bert.* keys, the vocabulary
// and the tensors. `cfg` is the parsed config.json (`where` names it in messages).
void add_encoder_model(const nlohmann::json& cfg, const std::string& dir, const std::string& where,
                       gguf::MemorySource& src);

// Adds the sentence-transformers keys above when `dir` has those files (nothing otherwise).
// Throws tessera::Error for modules or pooling modes Tessera does not implement.
void add_sentence_transformers_metadata(const std::string& dir, const std::string& arch,
                                        gguf::MemorySource& src);

}  // namespace tessera::hf
