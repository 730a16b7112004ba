// Hugging Face tokenizer files -> Tessera's VocabData / `tokenizer.ggml.*` metadata.
//
//   tokenizer.json, model "BPE":
//     byte-level (ByteLevel pre-tokenizer)   -> model "gpt2"; tokenizer.ggml.pre named after
//                                               the pre-tokenizer's Split regex(es)
//     SentencePiece-derived (byte_fallback,  -> model "llama"; token scores from merge ranks
//     Metaspace / Prepend("▁") normalizer)      (the token a merge of rank r makes scores -r)
//   vocab.json + merges.txt (GPT-2's original encoder.json + vocab.bpe) -> "gpt2" / "gpt-2"
//   added tokens: special -> CONTROL, others -> USER_DEFINED; ids the vocabulary skips (and
//   ids up to config.json's vocab_size) become "[PAD<id>]" tokens of type UNUSED.
//   tokenizer_config.json: chat_template, add_bos_token / add_eos_token, bos/eos/unk/pad
//   tokens; absent add_* flags fall back to tokenizer.json's TemplateProcessing.
//   generation_config.json: every eos_token_id ends generation (tokenizer.ggml.eog_token_ids).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "loader/memory_source.h"
#include "tokenizer/tokenizer.h"

namespace tessera::hf {

// The vocabulary of a parsed tokenizer.json. `where` names the file in messages.
// Throws tessera::Error for unsupported or malformed tokenizers.
VocabData vocab_from_tokenizer_json(const nlohmann::json& j, const std::string& where);
// GPT-2's original files: encoder.json (token -> id) and vocab.bpe (merges, "#version" line).
VocabData vocab_from_gpt2_files(const std::string& encoder_json_path,
                                const std::string& merges_path);
// Reads whichever tokenizer files `dir` holds (tokenizer.json, or vocab.json + merges.txt)
// together with tokenizer_config.json and generation_config.json. `config` is the
// parsed config.json (fallback token ids, vocab_size), or null.
VocabData read_tokenizer_dir(const std::string& dir, const nlohmann::json* config);
// Chat template of tokenizer_config.json / chat_template.jinja in `dir`; "" when none.
std::string read_chat_template(const std::string& dir);

// Writes `v` as tokenizer.ggml.* keys.
void write_vocab_metadata(const VocabData& v, gguf::MemorySource& out);

// A byte-level vocabulary with no merges: the 256 byte tokens, then "<|reserved_N|>"
// fillers up to n_vocab. For models built from a config.json alone (dummy weights).
VocabData synthetic_byte_vocab(int64_t n_vocab);

}  // namespace tessera::hf
