// Hugging Face tokenizer files -> VocabData. See hf_tokenizer.h.
#include "loader/hf_tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <unordered_map>

#include "core/error.h"
#include "core/file.h"
#include "tokenizer/unicode.h"
#include "tokenizer/wordpiece.h"

namespace tessera::hf {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

json parse_file(const std::string& path) {
  try {
    return json::parse(read_file(path));
  } catch (const json::exception& e) {
    throw Error(path + ": invalid JSON: " + e.what());
  }
}

// Pre-tokenizers of byte-level BPE tokenizers, recognised by the structure of the
// tokenizer.json "pre_tokenizer" (see signature()) and named as tokenizer.ggml.pre.
struct PreRule {
  std::string_view signature;
  std::string_view pre;
};

constexpr std::string_view kLlama3Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

std::string split_sig(std::string_view regex) {
  return "Split(" + std::string(regex) + ")";
}

const std::vector<std::pair<std::string, std::string_view>>& pre_rules() {
  static const std::vector<std::pair<std::string, std::string_view>> r = {
      {"ByteLevel(regex)", "gpt-2"},
      {split_sig(kLlama3Split) + ",ByteLevel", "llama-bpe"},
      {split_sig(kQwen2Split) + ",ByteLevel", "qwen2"},
      {"Digits(individual),ByteLevel(regex)", "smollm"},
  };
  return r;
}

// One line describing a pre_tokenizer: its steps joined by ','. ByteLevel carries
// "(regex)" when it applies GPT-2's own split (use_regex, true by default).
std::string signature(const json& p, const std::string& where) {
  if (!p.is_object() || !p.contains("type") || !p["type"].is_string())
    throw Error(where + ": pre_tokenizer has no type");
  const std::string type = p["type"].get<std::string>();
  if (type == "Sequence") {
    std::string s;
    for (const json& e : p.value("pretokenizers", json::array()))
      s += (s.empty() ? "" : ",") + signature(e, where);
    return s;
  }
  if (type == "ByteLevel") return p.value("use_regex", true) ? "ByteLevel(regex)" : "ByteLevel";
  if (type == "Split") {
    const json& pat = p.value("pattern", json::object());
    if (pat.contains("Regex") && pat["Regex"].is_string())
      return split_sig(pat["Regex"].get<std::string>());
    if (pat.contains("String") && pat["String"].is_string())
      return "SplitString(" + pat["String"].get<std::string>() + ")";
    throw Error(where + ": Split pre-tokenizer without a pattern");
  }
  if (type == "Digits")
    return p.value("individual_digits", false) ? "Digits(individual)" : "Digits";
  return type;
}

std::string token_content(const json& t) {
  if (t.is_string()) return t.get<std::string>();
  if (t.is_object() && t.contains("content") && t["content"].is_string())
    return t["content"].get<std::string>();
  return "";
}

std::string merge_string(const json& m, size_t i, const std::string& where) {
  if (m.is_string()) return m.get<std::string>();
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
    return m[0].get<std::string>() + " " + m[1].get<std::string>();
  throw Error(where + ": merge " + std::to_string(i) + " is neither \"a b\" nor [\"a\", \"b\"]");
}

// The token a merge produces: left + right, with the separator of the "a b" form removed.
std::string merged(const std::string& m) {
  const size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
  if (sp == std::string::npos) return m;
  return m.substr(0, sp) + m.substr(sp + 1);
}

// Sizes the token table to hold id `id`; refuses absurd ids before allocating.
void ensure_id(VocabData& v, int64_t id, const std::string& where) {
  if (id < 0 || id > (1 << 24))
    throw Error(where + ": token id " + std::to_string(id) + " out of range");
  if (static_cast<size_t>(id) >= v.tokens.size()) {
    v.tokens.resize(id + 1);
    v.types.resize(id + 1, static_cast<int32_t>(TokenType::UNUSED));
  }
}

void fill_holes(VocabData& v) {
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    if (v.tokens[i].empty()) {
      v.tokens[i] = "[PAD" + std::to_string(i) + "]";
      v.types[i] = static_cast<int32_t>(TokenType::UNUSED);
    }
  }
}

// Does the normalizer (or a Sequence of them) prepend "▁" to the text?
bool prepends_metaspace(const json& n) {
  if (!n.is_object()) return false;
  const std::string type = n.value("type", "");
  if (type == "Prepend") return n.value("prepend", "") == "\xE2\x96\x81";
  if (type == "Sequence") {
    for (const json& e : n.value("normalizers", json::array()))
      if (prepends_metaspace(e)) return true;
  }
  return false;
}

std::optional<int64_t> find_id(const VocabData& v, const std::string& text) {
  if (text.empty()) return std::nullopt;
  for (size_t i = 0; i < v.tokens.size(); ++i)
    if (v.tokens[i] == text) return static_cast<int64_t>(i);
  return std::nullopt;
}

// config.json / generation_config.json token ids: an int, a list of ints, or null.
std::vector<int64_t> id_list(const json& j, const char* key) {
  std::vector<int64_t> out;
  if (!j.is_object() || !j.contains(key)) return out;
  const json& v = j[key];
  if (v.is_number_integer()) out.push_back(v.get<int64_t>());
  if (v.is_array())
    for (const json& e : v)
      if (e.is_number_integer()) out.push_back(e.get<int64_t>());
  return out;
}

// bos/eos from a TemplateProcessing post-processor: a special token first in "single"
// means BOS is added, one last means EOS is.
void template_flags(const json& pp, VocabData& v) {
  if (!pp.is_object()) return;
  const std::string type = pp.value("type", "");
  if (type == "Sequence") {
    for (const json& e : pp.value("processors", json::array())) template_flags(e, v);
    return;
  }
  // RoBERTa's processor: "<s> A </s>" ("cls" and "sep" name [text, id]).
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    auto named = [&](const char* key) -> std::optional<int64_t> {
      if (!pp.contains(key) || !pp[key].is_array() || pp[key].empty() || !pp[key][0].is_string())
        return std::nullopt;
      return find_id(v, pp[key][0].get<std::string>());
    };
    if (auto id = named("cls"); id && !v.add_bos) {
      v.add_bos = true;
      if (!v.bos_id) v.bos_id = id;
    }
    if (auto id = named("sep"); id && !v.add_eos) {
      v.add_eos = true;
      if (!v.eos_id) v.eos_id = id;
    }
    return;
  }
  if (type != "TemplateProcessing" || !pp.contains("single") || !pp["single"].is_array()) return;
  const json& single = pp["single"];
  auto special_id = [&](const json& item) -> std::optional<int64_t> {
    if (!item.is_object() || !item.contains("SpecialToken")) return std::nullopt;
    return find_id(v, item["SpecialToken"].value("id", ""));
  };
  if (!single.empty()) {
    if (auto id = special_id(single.front()); id && !v.add_bos) {
      v.add_bos = true;
      if (!v.bos_id) v.bos_id = id;
    }
    if (single.size() > 1)
      if (auto id = special_id(single.back()); id && !v.add_eos) {
        v.add_eos = true;
        if (!v.eos_id) v.eos_id = id;
      }
  }
}

// model.vocab (text -> id) into v.tokens, each of type NORMAL.
void add_vocab_object(const json& vocab, VocabData& v, const std::string& where) {
  for (const auto& [text, id] : vocab.items()) {
    if (!id.is_number_integer())
      throw Error(where + ": vocab id of '" + text + "' is not an integer");
    const int64_t i = id.get<int64_t>();
    ensure_id(v, i, where);
    if (!v.tokens[i].empty())
      throw Error(where + ": tokens '" + v.tokens[i] + "' and '" + text + "' share id " +
                  std::to_string(i));
    v.tokens[i] = text;
    v.types[i] = static_cast<int32_t>(TokenType::NORMAL);
  }
}

// tokenizer.json's added_tokens: special ones CONTROL, the others USER_DEFINED.
void add_added_tokens(const json& j, VocabData& v, const std::string& where) {
  const json added = j.value("added_tokens", json::array());
  if (!added.is_array()) throw Error(where + ": added_tokens is not an array");
  for (const json& a : added) {
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() ||
        !a.contains("content") || !a["content"].is_string())
      throw Error(where + ": an added_tokens entry lacks an integer id or a content string");
    const int64_t i = a["id"].get<int64_t>();
    ensure_id(v, i, where);
    v.tokens[i] = a["content"].get<std::string>();
    v.types[i] = static_cast<int32_t>(a.value("special", false) ? TokenType::CONTROL
                                                                : TokenType::USER_DEFINED);
  }
}

// A WordPiece tokenizer.json (BERT): BertNormalizer + BertPreTokenizer + WordPiece, with
// [CLS] A [SEP] as post-processor. Tokens take llama.cpp's phantom-space convention (see
// tokenizer/wordpiece.h): "##x" -> "x", word-initial "x" -> "▁x", added tokens unchanged.
VocabData wordpiece_vocab(const json& j, const std::string& where) {
  const json& model = j["model"];
  if (!model.contains("vocab") || !model["vocab"].is_object())
    throw Error(where + ": model.vocab is not an object");
  if (model.value("continuing_subword_prefix", "##") != "##")
    throw Error(where + ": WordPiece continuing_subword_prefix other than '##' is not supported");
  const json norm = j.value("normalizer", json());
  if (!norm.is_object() || norm.value("type", "") != "BertNormalizer")
    throw Error(where + ": a WordPiece tokenizer needs the BertNormalizer (found " +
                (norm.is_object() ? norm.value("type", "?") : std::string("none")) + ")");
  const json pre = j.value("pre_tokenizer", json());
  if (!pre.is_object() || pre.value("type", "") != "BertPreTokenizer")
    throw Error(where + ": a WordPiece tokenizer needs the BertPreTokenizer (found " +
                (pre.is_object() ? pre.value("type", "?") : std::string("none")) + ")");
  WordPieceOptions o;
  o.clean_text = norm.value("clean_text", true);
  o.chinese_chars = norm.value("handle_chinese_chars", true);
  o.lowercase = norm.value("lowercase", true);
  o.strip_accents = norm.contains("strip_accents") && norm["strip_accents"].is_boolean()
                        ? norm["strip_accents"].get<bool>()
                        : o.lowercase;  // null: follows lowercase
  o.max_chars_per_word = model.value("max_input_chars_per_word", int64_t{100});

  VocabData v;
  v.model = "bert";
  v.wordpiece = o;
  add_vocab_object(model["vocab"], v, where);
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    std::string& t = v.tokens[i];
    if (v.types[i] != static_cast<int32_t>(TokenType::NORMAL)) continue;
    t = t.starts_with("##") ? t.substr(2) : "\xE2\x96\x81" + t;
    // "##" alone becomes "": fill_holes must not take it for a missing id.
    if (t.empty()) t = "[EMPTY_" + std::to_string(i) + "]";
  }
  add_added_tokens(j, v, where);
  fill_holes(v);
  if (v.tokens.empty()) throw Error(where + ": empty vocabulary");
  if (model.contains("unk_token") && model["unk_token"].is_string())
    v.unk_id = find_id(v, model["unk_token"].get<std::string>());
  // [CLS] and [SEP] from the post-processor's template ([CLS] A [SEP]).
  template_flags(j.value("post_processor", json()), v);
  // [CLS] is also written as the BOS: llama.cpp's WordPiece vocabulary takes its BOS from
  // bos_token_id (defaulting to BERT's 101 without it).
  v.cls_id = v.bos_id;
  v.sep_id = v.eos_id;
  v.eos_id.reset();
  v.add_bos.reset();
  v.add_eos.reset();
  return v;
}

}  // namespace

VocabData vocab_from_tokenizer_json(const json& j, const std::string& where) {
  try {
    if (!j.is_object() || !j.contains("model") || !j["model"].is_object())
      throw Error(where + ": no \"model\" object");
    const json& model = j["model"];
    const std::string type = model.value("type", "BPE");
    if (type == "WordPiece") return wordpiece_vocab(j, where);
    if (type != "BPE")
      throw Error(where + ": tokenizer model '" + type +
                  "' is not supported (supported: byte-level BPE, SentencePiece-style BPE, "
                  "WordPiece)");
    if (!model.contains("vocab") || !model["vocab"].is_object())
      throw Error(where + ": model.vocab is not an object");
    if (!model.contains("merges") || !model["merges"].is_array())
      throw Error(where + ": model.merges is not an array");

    VocabData v;
    const bool byte_fallback = model.value("byte_fallback", false);
    const json pre = j.contains("pre_tokenizer") ? j["pre_tokenizer"] : json();
    const bool metaspace_pre = pre.is_object() && pre.value("type", "") == "Metaspace";
    const bool spm =
        byte_fallback || metaspace_pre || prepends_metaspace(j.value("normalizer", json()));
    if (spm) {
      v.model = "llama";
      v.add_space_prefix = prepends_metaspace(j.value("normalizer", json())) ||
                           (metaspace_pre && pre.value("prepend_scheme", "always") != "never" &&
                            pre.value("add_prefix_space", true));
    } else {
      v.model = "gpt2";
      if (pre.is_null()) throw Error(where + ": byte-level BPE without a pre_tokenizer");
      const std::string sig = signature(pre, where);
      for (const auto& [s, name] : pre_rules())
        if (s == sig) v.pre = name;
      if (v.pre.empty())
        throw Error(where + ": unrecognised pre-tokenizer " + sig +
                    " (known: the Llama 3, Qwen2, GPT-2 and SmolLM/StarCoder pre-tokenizers)");
    }

    add_vocab_object(model["vocab"], v, where);
    add_added_tokens(j, v, where);
    const json& merges = model["merges"];
    v.merges.reserve(merges.size());
    for (size_t i = 0; i < merges.size(); ++i)
      v.merges.push_back(merge_string(merges[i], i, where));

    if (spm) {
      // Byte-fallback tokens, the unknown token and scores from merge ranks: SentencePiece
      // merges the adjacent pair whose result scores highest, and BPE applies merges in
      // rank order, so the token made by rank r gets score -r. Vocabulary tokens that no
      // merge makes score below every merge result; byte and special tokens score 0.
      const std::string unk =
          model.value("unk_token", json()).is_string() ? model["unk_token"].get<std::string>() : "";
      std::unordered_map<std::string, int64_t> id_of;
      for (size_t i = 0; i < v.tokens.size(); ++i) id_of.emplace(v.tokens[i], i);
      v.scores.assign(v.tokens.size(), 0.0f);
      std::vector<bool> scored(v.tokens.size(), false);
      for (size_t r = 0; r < v.merges.size(); ++r) {
        auto it = id_of.find(merged(v.merges[r]));
        if (it != id_of.end() && !scored[it->second]) {
          v.scores[it->second] = -static_cast<float>(r);
          scored[it->second] = true;
        }
      }
      for (size_t i = 0; i < v.tokens.size(); ++i) {
        if (unicode::parse_byte_token(v.tokens[i]) >= 0) {
          v.types[i] = static_cast<int32_t>(TokenType::BYTE);
        } else if (!unk.empty() && v.tokens[i] == unk) {
          v.types[i] = static_cast<int32_t>(TokenType::UNKNOWN);
          v.unk_id = static_cast<int64_t>(i);
        } else if (!scored[i] && v.types[i] == static_cast<int32_t>(TokenType::NORMAL)) {
          v.scores[i] = -static_cast<float>(v.merges.size() + i);
        }
      }
      v.merges.clear();  // the SentencePiece tokenizer works from scores
    }
    fill_holes(v);
    if (v.tokens.empty()) throw Error(where + ": empty vocabulary");
    template_flags(j.value("post_processor", json()), v);
    // template_flags only sets what it finds; leave unset flags to the tokenizer defaults.
    return v;
  } catch (const json::exception& e) {
    throw Error(where + ": unexpected structure: " + e.what());
  }
}

VocabData vocab_from_gpt2_files(const std::string& encoder_json_path,
                                const std::string& merges_path) {
  const json enc = parse_file(encoder_json_path);
  if (!enc.is_object()) throw Error(encoder_json_path + ": not a JSON object of token -> id");
  VocabData v;
  v.model = "gpt2";
  v.pre = "gpt-2";
  for (const auto& [text, id] : enc.items()) {
    if (!id.is_number_integer())
      throw Error(encoder_json_path + ": id of '" + text + "' is not an integer");
    const int64_t i = id.get<int64_t>();
    ensure_id(v, i, encoder_json_path);
    if (!v.tokens[i].empty())
      throw Error(encoder_json_path + ": two tokens share id " + std::to_string(i));
    v.tokens[i] = text;
    v.types[i] = static_cast<int32_t>(TokenType::NORMAL);
  }
  std::istringstream lines(read_file(merges_path));
  std::string line;
  for (size_t n = 0; std::getline(lines, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (n == 0 && line.rfind("#version", 0) == 0)) continue;
    if (line.find(' ') == std::string::npos || line.find(' ') == 0)
      throw Error(merges_path + ": line " + std::to_string(n + 1) + " is not 'left right'");
    v.merges.push_back(line);
  }
  if (v.merges.empty()) throw Error(merges_path + ": no merges");
  fill_holes(v);
  if (auto id = find_id(v, "<|endoftext|>")) {
    v.types[*id] = static_cast<int32_t>(TokenType::CONTROL);
    v.bos_id = v.eos_id = id;
  }
  return v;
}

std::string read_chat_template(const std::string& dir) {
  const fs::path d(dir);
  if (fs::exists(d / "chat_template.jinja")) return read_file((d / "chat_template.jinja").string());
  const fs::path cfg = d / "tokenizer_config.json";
  if (!fs::exists(cfg)) return "";
  const json tc = parse_file(cfg.string());
  if (!tc.is_object() || !tc.contains("chat_template")) return "";
  const json& t = tc["chat_template"];
  if (t.is_string()) return t.get<std::string>();
  if (t.is_array()) {  // [{"name": ..., "template": ...}]: the one named "default"
    for (const json& e : t)
      if (e.is_object() && e.value("name", "") == "default" && e.contains("template") &&
          e["template"].is_string())
        return e["template"].get<std::string>();
  }
  if (t.is_null()) return "";
  throw Error(cfg.string() + ": chat_template is neither a string nor a list with a 'default'");
}

VocabData read_tokenizer_dir(const std::string& dir, const json* config) {
  const fs::path d(dir);
  VocabData v;
  if (fs::exists(d / "tokenizer.json")) {
    const std::string p = (d / "tokenizer.json").string();
    v = vocab_from_tokenizer_json(parse_file(p), p);
  } else if (fs::exists(d / "vocab.json") && fs::exists(d / "merges.txt")) {
    v = vocab_from_gpt2_files((d / "vocab.json").string(), (d / "merges.txt").string());
  } else {
    throw Error(dir + ": no tokenizer.json (or vocab.json + merges.txt)");
  }

  // Added tokens that only tokenizer_config.json declares (older vocab.json layouts).
  const fs::path tcp = d / "tokenizer_config.json";
  json tc = fs::exists(tcp) ? parse_file(tcp.string()) : json::object();
  const std::string tcs = tcp.string();
  if (!tc.is_object()) throw Error(tcs + ": not a JSON object");
  try {
    if (tc.contains("added_tokens_decoder") && tc["added_tokens_decoder"].is_object()) {
      for (const auto& [key, a] : tc["added_tokens_decoder"].items()) {
        int64_t id = -1;
        try {
          id = std::stoll(key);
        } catch (const std::exception&) {
          throw Error(tcs + ": added_tokens_decoder key '" + key + "' is not an id");
        }
        const std::string content = token_content(a);
        if (content.empty()) continue;
        if (id >= 0 && static_cast<size_t>(id) < v.tokens.size() &&
            v.types[id] != static_cast<int32_t>(TokenType::UNUSED))
          continue;  // tokenizer.json already has it
        ensure_id(v, id, tcs);
        v.tokens[id] = content;
        v.types[id] = static_cast<int32_t>(a.value("special", false) ? TokenType::CONTROL
                                                                     : TokenType::USER_DEFINED);
        if (v.model == "llama") v.scores.resize(v.tokens.size(), 0.0f);
      }
      fill_holes(v);
    }
    auto id_of = [&](const char* key) -> std::optional<int64_t> {
      if (!tc.contains(key) || tc[key].is_null()) return std::nullopt;
      const std::string text = token_content(tc[key]);
      auto id = find_id(v, text);
      if (!id) throw Error(tcs + ": " + key + " '" + text + "' is not in the vocabulary");
      return id;
    };
    if (auto id = id_of("bos_token")) v.bos_id = id;
    if (auto id = id_of("eos_token")) v.eos_id = id;
    if (auto id = id_of("unk_token")) v.unk_id = id;
    if (auto id = id_of("pad_token")) v.pad_id = id;
    if (v.model == "bert") {
      if (auto id = id_of("cls_token")) v.cls_id = id;
      if (auto id = id_of("sep_token")) v.sep_id = id;
      if (auto id = id_of("mask_token")) v.mask_id = id;
      // [CLS] and [SEP] play the parts of BOS and end of text.
      v.bos_id = v.cls_id;
      v.eos_id.reset();
    }
    if (tc.contains("add_bos_token") && tc["add_bos_token"].is_boolean())
      v.add_bos = tc["add_bos_token"].get<bool>();
    if (tc.contains("add_eos_token") && tc["add_eos_token"].is_boolean())
      v.add_eos = tc["add_eos_token"].get<bool>();
  } catch (const json::exception& e) {
    throw Error(tcs + ": unexpected structure: " + e.what());
  }

  if (config) {
    if (!v.bos_id && v.model != "bert")
      if (auto ids = id_list(*config, "bos_token_id"); !ids.empty()) v.bos_id = ids[0];
    if (!v.eos_id && v.model != "bert")
      if (auto ids = id_list(*config, "eos_token_id"); !ids.empty()) v.eos_id = ids[0];
    // The embedding matrix may have more rows than the tokenizer has tokens.
    if (config->contains("vocab_size") && (*config)["vocab_size"].is_number_integer()) {
      const int64_t n = (*config)["vocab_size"].get<int64_t>();
      if (n > static_cast<int64_t>(v.tokens.size())) {
        ensure_id(v, n - 1, "config.json vocab_size");
        if (v.model == "llama") v.scores.resize(v.tokens.size(), 0.0f);
        fill_holes(v);
      }
    }
  }

  // generation_config.json: every eos_token_id ends generation, and the EOS token is one
  // of them (Llama 3 Instruct: <|end_of_text|> in tokenizer_config, <|eot_id|> here).
  const fs::path gcp = d / "generation_config.json";
  if (fs::exists(gcp)) {
    const json gc = parse_file(gcp.string());
    const std::vector<int64_t> eos = id_list(gc, "eos_token_id");
    for (int64_t id : eos)
      if (id < 0 || id >= static_cast<int64_t>(v.tokens.size()))
        throw Error(gcp.string() + ": eos_token_id " + std::to_string(id) +
                    " is outside the vocabulary");
    if (!eos.empty()) {
      v.eog_ids = eos;
      if (!v.eos_id || std::find(eos.begin(), eos.end(), *v.eos_id) == eos.end()) v.eos_id = eos[0];
    }
  }
  return v;
}

void write_vocab_metadata(const VocabData& v, gguf::MemorySource& out) {
  out.set_string("tokenizer.ggml.model", v.model);
  if (!v.pre.empty()) out.set_string("tokenizer.ggml.pre", v.pre);
  out.set_string_array("tokenizer.ggml.tokens", v.tokens);
  if (!v.scores.empty()) out.set_float_array("tokenizer.ggml.scores", v.scores);
  if (!v.types.empty()) out.set_int32_array("tokenizer.ggml.token_type", v.types);
  if (!v.merges.empty()) out.set_string_array("tokenizer.ggml.merges", v.merges);
  auto id = [&](const char* key, const std::optional<int64_t>& x) {
    if (x) out.set_uint(key, static_cast<uint64_t>(*x));
  };
  id("tokenizer.ggml.bos_token_id", v.bos_id);
  id("tokenizer.ggml.eos_token_id", v.eos_id);
  id("tokenizer.ggml.eot_token_id", v.eot_id);
  id("tokenizer.ggml.eom_token_id", v.eom_id);
  id("tokenizer.ggml.unknown_token_id", v.unk_id);
  id("tokenizer.ggml.padding_token_id", v.pad_id);
  if (v.add_bos) out.set_bool("tokenizer.ggml.add_bos_token", *v.add_bos);
  if (v.add_eos) out.set_bool("tokenizer.ggml.add_eos_token", *v.add_eos);
  if (v.add_space_prefix) out.set_bool("tokenizer.ggml.add_space_prefix", *v.add_space_prefix);
  if (!v.eog_ids.empty()) {
    std::vector<int32_t> ids(v.eog_ids.begin(), v.eog_ids.end());
    out.set_int32_array("tokenizer.ggml.eog_token_ids", ids);
  }
  id("tokenizer.ggml.cls_token_id", v.cls_id);
  id("tokenizer.ggml.seperator_token_id", v.sep_id);  // llama.cpp's spelling
  id("tokenizer.ggml.mask_token_id", v.mask_id);
  if (v.wordpiece) write_wordpiece_options(*v.wordpiece, out);
}

VocabData synthetic_byte_vocab(int64_t n_vocab) {
  if (n_vocab < 258 || n_vocab > (1 << 24))
    throw Error("a vocabulary built without tokenizer files needs 258 <= vocab_size <= 2^24 (got " +
                std::to_string(n_vocab) + ")");
  VocabData v;
  v.model = "gpt2";
  v.pre = "gpt-2";
  for (int b = 0; b < 256; ++b)
    v.tokens.push_back(unicode::byte_to_unicode(static_cast<uint8_t>(b)));
  v.types.assign(256, static_cast<int32_t>(TokenType::NORMAL));
  // One merge so that the BPE tokenizer has a merge table: "Ġ" + "t".
  const std::string sp = unicode::byte_to_unicode(' ');
  v.tokens.push_back(sp + "t");
  v.types.push_back(static_cast<int32_t>(TokenType::NORMAL));
  v.merges.push_back(sp + " t");
  v.tokens.push_back("<|endoftext|>");
  v.types.push_back(static_cast<int32_t>(TokenType::CONTROL));
  v.bos_id = v.eos_id = 257;
  for (int64_t i = 258; i < n_vocab; ++i) {
    v.tokens.push_back("<|reserved_" + std::to_string(i) + "|>");
    v.types.push_back(static_cast<int32_t>(TokenType::UNUSED));
  }
  return v;
}

}  // namespace tessera::hf
