// Tokenizer front-end: reads `tokenizer.ggml.*` metadata, validates it, applies llama.cpp's
// defaults and special-token conventions, and hands the algorithm to SpmTokenizer or
// BpeTokenizer.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cctype>
#include <limits>
#include <span>

#include "core/error.h"
#include "loader/gguf.h"
#include "tokenizer/bpe.h"
#include "tokenizer/spm.h"
#include "tokenizer/wordpiece.h"

namespace tessera {

namespace {

constexpr uint8_t kStripLeft = 1;
constexpr uint8_t kStripRight = 2;

bool text_in(const std::string& s, std::span<const std::string_view> list) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

// Token texts that end a turn in common chat formats. Vocabularies rarely mark them in
// metadata, so (like llama.cpp) they are recognised by text.
constexpr std::string_view kEotTexts[] = {
    "<|eot_id|>",        "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<|end_of_text|>",   "<EOT>",      "_<EOT>",  "[EOT]",         "<｜end▁of▁sentence｜>",
    "<end_of_utterance>"};
constexpr std::string_view kEogTexts[] = {"<|eot_id|>",
                                          "<|im_end|>",
                                          "<|end|>",
                                          "<|return|>",
                                          "<|call|>",
                                          "<|flush|>",
                                          "<|calls|>",
                                          "<end_of_turn>",
                                          "<|endoftext|>",
                                          "</s>",
                                          "<|eom_id|>",
                                          "<EOT>",
                                          "_<EOT>",
                                          "[EOT]",
                                          "[EOS]",
                                          "<|end_of_text|>",
                                          "<end_of_utterance>",
                                          "<eos>",
                                          "<turn|>",
                                          "<|tool_response>",
                                          "<｜end▁of▁sentence｜>",
                                          "[e~["};
constexpr std::string_view kFimPadTexts[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>",
                                             "[PAD]"};
constexpr std::string_view kFimRepTexts[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>",
                                             "<REPO>", "<reponame>"};
constexpr std::string_view kFimSepTexts[] = {"<|file_sep|>"};
constexpr std::string_view kEomTexts[] = {"<|eom_id|>"};
constexpr std::string_view kRenderedTexts[] = {"<|channel|>", "<|message|>", "<|start|>",
                                               "<|constrain|>"};

// Token-id keys. Some converters write -1 (often as u32 0xFFFFFFFF) for "no such token";
// that reads as absent. Other values are range-checked by load_vocab.
std::optional<int64_t> get_id(const gguf::Source& f, const char* key) {
  std::optional<int64_t> id = f.get_int(key);
  if (id && (*id == -1 || *id == 0xFFFFFFFFll)) return std::nullopt;
  return id;
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const gguf::Source& f) {
  VocabData v;
  std::optional<std::string> model = f.get_string("tokenizer.ggml.model");
  if (!model) throw Error("tokenizer: GGUF has no tokenizer.ggml.model");
  v.model = *model;
  if (v.model != "llama" && v.model != "gpt2" && v.model != "bert")
    return from_vocab(v);  // refuses the model
  v.pre = f.get_string("tokenizer.ggml.pre").value_or("");
  v.name = f.get_string("general.name").value_or("");
  v.tokens = f.get_string_array("tokenizer.ggml.tokens");
  if (f.find("tokenizer.ggml.tokens") == nullptr) {
    throw Error("tokenizer: GGUF has no tokenizer.ggml.tokens");
  }
  v.scores = f.get_float_array("tokenizer.ggml.scores");
  for (int64_t t : f.get_int_array("tokenizer.ggml.token_type")) {
    if (t < std::numeric_limits<int32_t>::min() || t > std::numeric_limits<int32_t>::max()) {
      throw Error("tokenizer: tokenizer.ggml.token_type value " + std::to_string(t) +
                  " out of range");
    }
    v.types.push_back(static_cast<int32_t>(t));
  }
  if (f.find("tokenizer.ggml.scores") != nullptr && v.scores.empty() && !v.tokens.empty()) {
    throw Error("tokenizer: tokenizer.ggml.scores is empty");
  }
  if (f.find("tokenizer.ggml.token_type") != nullptr && v.types.empty() && !v.tokens.empty()) {
    throw Error("tokenizer: tokenizer.ggml.token_type is empty");
  }
  v.merges = f.get_string_array("tokenizer.ggml.merges");
  v.bos_id = get_id(f, "tokenizer.ggml.bos_token_id");
  v.eos_id = get_id(f, "tokenizer.ggml.eos_token_id");
  v.eot_id = get_id(f, "tokenizer.ggml.eot_token_id");
  v.eom_id = get_id(f, "tokenizer.ggml.eom_token_id");
  v.unk_id = get_id(f, "tokenizer.ggml.unknown_token_id");
  v.pad_id = get_id(f, "tokenizer.ggml.padding_token_id");
  v.fim_pad_id = get_id(f, "tokenizer.ggml.fim_pad_token_id");
  v.fim_rep_id = get_id(f, "tokenizer.ggml.fim_rep_token_id");
  v.fim_sep_id = get_id(f, "tokenizer.ggml.fim_sep_token_id");
  v.add_bos = f.get_bool("tokenizer.ggml.add_bos_token");
  v.add_eos = f.get_bool("tokenizer.ggml.add_eos_token");
  v.add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix");
  v.eog_ids = f.get_int_array("tokenizer.ggml.eog_token_ids");
  if (v.model == "bert") {
    v.cls_id = get_id(f, "tokenizer.ggml.cls_token_id");
    v.sep_id = get_id(f, "tokenizer.ggml.seperator_token_id");  // llama.cpp's spelling
    v.mask_id = get_id(f, "tokenizer.ggml.mask_token_id");
    v.wordpiece = read_wordpiece_options(f);
  }
  return from_vocab(v);
}

std::unique_ptr<Tokenizer> Tokenizer::from_vocab(const VocabData& v) {
  if (v.model == "llama") return std::make_unique<SpmTokenizer>(v);
  if (v.model == "gpt2") return std::make_unique<BpeTokenizer>(v);
  if (v.model == "bert") return std::make_unique<WpmTokenizer>(v);
  throw Error("tokenizer: unsupported tokenizer model '" + v.model +
              "' (supported: 'llama' = SentencePiece, 'gpt2' = byte-level BPE, 'bert' = "
              "WordPiece)");
}

void Tokenizer::load_vocab(const VocabData& v, const Defaults& d) {
  const size_t n = v.tokens.size();
  if (n == 0) throw Error("tokenizer: tokenizer.ggml.tokens is missing or empty");
  if (n > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    throw Error("tokenizer: vocabulary too large (" + std::to_string(n) + " tokens)");
  }
  if (!v.scores.empty() && v.scores.size() != n) {
    throw Error("tokenizer: tokenizer.ggml.scores has " + std::to_string(v.scores.size()) +
                " entries but tokenizer.ggml.tokens has " + std::to_string(n));
  }
  if (!v.types.empty() && v.types.size() != n) {
    throw Error("tokenizer: tokenizer.ggml.token_type has " + std::to_string(v.types.size()) +
                " entries but tokenizer.ggml.tokens has " + std::to_string(n));
  }

  pre_ = v.pre;
  tokens_.resize(n);
  types_.assign(n, TokenType::NORMAL);
  scores_.assign(n, 0.0f);
  strip_.assign(n, 0);
  token_to_id_.clear();
  token_to_id_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    // An empty token could never be matched and would make partitioning loop; llama.cpp
    // renames it the same way.
    tokens_[i] = v.tokens[i].empty() ? "[EMPTY_" + std::to_string(i) + "]" : v.tokens[i];
    if (!v.scores.empty()) scores_[i] = v.scores[i];
    if (!v.types.empty()) {
      const int32_t t = v.types[i];
      if (t < 0 || t > static_cast<int32_t>(TokenType::BYTE)) {
        throw Error("tokenizer: token " + std::to_string(i) + " has invalid token_type " +
                    std::to_string(t));
      }
      types_[i] = static_cast<TokenType>(t);
    }
    auto [it, inserted] = token_to_id_.emplace(tokens_[i], static_cast<int32_t>(i));
    if (!inserted) {
      throw Error("tokenizer: duplicate token '" + tokens_[i] + "' at ids " +
                  std::to_string(it->second) + " and " + std::to_string(i));
    }
  }

  // Model defaults that point outside this vocabulary are dropped; ids given in the
  // metadata must be valid.
  auto pick = [n](int32_t def, const std::optional<int64_t>& meta, const char* key) -> int32_t {
    if (meta) {
      if (*meta < 0 || *meta >= static_cast<int64_t>(n)) {
        throw Error(std::string("tokenizer: ") + key + " = " + std::to_string(*meta) +
                    " is outside the vocabulary (" + std::to_string(n) + " tokens)");
      }
      return static_cast<int32_t>(*meta);
    }
    return def >= 0 && static_cast<size_t>(def) < n ? def : -1;
  };
  bos_ = pick(d.bos, v.bos_id, "tokenizer.ggml.bos_token_id");
  eos_ = pick(d.eos, v.eos_id, "tokenizer.ggml.eos_token_id");
  unk_ = pick(d.unk, v.unk_id, "tokenizer.ggml.unknown_token_id");
  sep_ = pick(d.sep, v.sep_id, "tokenizer.ggml.seperator_token_id");
  pad_ = pick(-1, v.pad_id, "tokenizer.ggml.padding_token_id");
  eot_ = pick(-1, v.eot_id, "tokenizer.ggml.eot_token_id");

  add_bos_ = v.add_bos.value_or(d.add_bos);
  add_eos_ = v.add_eos.value_or(d.add_eos);
  add_space_prefix_ = v.add_space_prefix.value_or(d.add_space_prefix);
  if (add_bos_ && bos_ < 0) {
    throw Error("tokenizer: tokenizer.ggml.add_bos_token is true but there is no BOS token");
  }
  if (add_eos_ && eos_ < 0) {
    throw Error("tokenizer: tokenizer.ggml.add_eos_token is true but there is no EOS token");
  }
  find_special_tokens(v);
}

// End-of-generation and special-token bookkeeping, in llama.cpp's order: tokens found by
// text are forced to CONTROL (so they are hidden in output and only parsed with
// parse_special), then the partition list is built from the final types.
void Tokenizer::find_special_tokens(const VocabData& v) {
  const int32_t n = n_vocab();
  auto pick_meta = [n](const std::optional<int64_t>& meta, const char* key) -> int32_t {
    if (!meta) return -1;
    if (*meta < 0 || *meta >= n) {
      throw Error(std::string("tokenizer: ") + key + " = " + std::to_string(*meta) +
                  " is outside the vocabulary");
    }
    return static_cast<int32_t>(*meta);
  };
  int32_t eom = pick_meta(v.eom_id, "tokenizer.ggml.eom_token_id");
  int32_t fim_pad = pick_meta(v.fim_pad_id, "tokenizer.ggml.fim_pad_token_id");
  int32_t fim_rep = pick_meta(v.fim_rep_id, "tokenizer.ggml.fim_rep_token_id");
  int32_t fim_sep = pick_meta(v.fim_sep_id, "tokenizer.ggml.fim_sep_token_id");

  auto make_control = [this](int32_t id) {
    if (types_[id] != TokenType::CONTROL) types_[id] = TokenType::CONTROL;
  };
  auto detect = [&](int32_t& slot, std::span<const std::string_view> texts) {
    if (slot >= 0) return;
    for (int32_t id = 0; id < n; ++id) {
      if (text_in(tokens_[id], texts)) {
        slot = id;
        make_control(id);
        return;
      }
    }
  };
  detect(eot_, kEotTexts);
  detect(eom, kEomTexts);
  detect(fim_pad, kFimPadTexts);
  detect(fim_rep, kFimRepTexts);
  detect(fim_sep, kFimSepTexts);

  std::vector<int32_t> eog;
  for (int32_t id : {fim_pad, fim_rep, fim_sep, eos_, eot_, eom}) {
    if (id >= 0) eog.push_back(id);
  }
  for (int64_t id : v.eog_ids) {
    if (id < 0 || id >= n) {
      throw Error("tokenizer: tokenizer.ggml.eog_token_ids entry " + std::to_string(id) +
                  " is outside the vocabulary");
    }
    eog.push_back(static_cast<int32_t>(id));
  }
  for (int32_t id = 0; id < n; ++id) {
    if (text_in(tokens_[id], kEogTexts)) {
      eog.push_back(id);
      make_control(id);
    }
  }
  std::sort(eog.begin(), eog.end());
  eog.erase(std::unique(eog.begin(), eog.end()), eog.end());

  // Harmony-style vocabularies (<|return|> + <|call|>) use <|end|> between messages, not
  // at the end of generation; Gemma-style ones with <|tool_response> use </s> as text.
  auto has = [&](std::string_view t) {
    return std::any_of(eog.begin(), eog.end(), [&](int32_t id) { return tokens_[id] == t; });
  };
  auto drop = [&](std::string_view t, TokenType as) {
    for (auto it = eog.begin(); it != eog.end(); ++it) {
      if (tokens_[*it] == t) {
        types_[*it] = as;
        eog.erase(it);
        return;
      }
    }
  };
  if ((has("<|return|>") && has("<|call|>") && has("<|end|>")) ||
      (has("<|calls|>") && has("<|flush|>") && has("<|end|>"))) {
    drop("<|end|>", TokenType::USER_DEFINED);
  }
  if (has("<|tool_response>") && has("</s>")) drop("</s>", TokenType::NORMAL);
  eog_ids_ = std::move(eog);

  // Channel markers of harmony chat formats are rendered as text.
  for (int32_t id = 0; id < n; ++id) {
    if (text_in(tokens_[id], kRenderedTexts)) {
      types_[id] = TokenType::USER_DEFINED;
    }
  }

  special_ids_.clear();
  for (int32_t id = 0; id < n; ++id) {
    const TokenType t = types_[id];
    if (t == TokenType::CONTROL || t == TokenType::USER_DEFINED || t == TokenType::UNKNOWN) {
      special_ids_.push_back(id);
    }
  }
  std::stable_sort(special_ids_.begin(), special_ids_.end(),
                   [this](int32_t a, int32_t b) { return tokens_[a].size() > tokens_[b].size(); });

  // Phi-3's tokenizer strips whitespace to the right of its special tokens (except the
  // three below); llama.cpp recognises the family by general.name.
  std::string name = v.name;
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
    for (int32_t id : special_ids_) strip_[id] |= kStripRight;
    if (int32_t id = find_token("</s>"); id >= 0) strip_[id] |= kStripRight;
    for (const char* t : {"<unk>", "<s>", "<|endoftext|>"}) {
      if (int32_t id = find_token(t); id >= 0) strip_[id] &= ~kStripRight;
    }
  }
}

int32_t Tokenizer::find_token(std::string_view text) const {
  auto it = token_to_id_.find(text);
  return it == token_to_id_.end() ? -1 : it->second;
}

bool Tokenizer::is_eog(int32_t id) const {
  return std::binary_search(eog_ids_.begin(), eog_ids_.end(), id);
}

bool Tokenizer::is_hidden_special(int32_t id) const {
  return types_[id] == TokenType::CONTROL || types_[id] == TokenType::UNKNOWN;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool special) const {
  std::string out;
  for (int32_t id : ids) out += token_to_piece(id, special);
  return out;
}

std::vector<Tokenizer::Fragment> Tokenizer::partition(std::string_view text,
                                                      bool parse_special) const {
  std::vector<Fragment> cur;
  if (text.empty()) return cur;
  cur.push_back({-1, text});
  std::vector<Fragment> next;
  auto is_space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  // One pass per special token, longest first, so a longer token wins over any shorter
  // token it contains.
  for (int32_t id : special_ids_) {
    if (!parse_special && is_hidden_special(id)) continue;
    const std::string& needle = tokens_[id];
    next.clear();
    for (const Fragment& f : cur) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      std::string_view rest = f.text;
      for (;;) {
        const size_t m = rest.find(needle);
        if (m == std::string_view::npos) {
          if (!rest.empty()) next.push_back({-1, rest});
          break;
        }
        std::string_view left = rest.substr(0, m);
        if (strip_[id] & kStripLeft) {
          while (!left.empty() && is_space(left.back())) left.remove_suffix(1);
        }
        if (!left.empty()) next.push_back({-1, left});
        next.push_back({id, {}});
        rest = rest.substr(m + needle.size());
        if (strip_[id] & kStripRight) {
          while (!rest.empty() && is_space(rest.front())) rest.remove_prefix(1);
        }
      }
    }
    cur.swap(next);
  }
  return cur;
}

}  // namespace tessera
