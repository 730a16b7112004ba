#include "structured/json_schema.h"

#include <cmath>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <tuple>
#include <vector>

#include "structured/regex.h"

namespace tessera::structured {

using ojson = nlohmann::ordered_json;

namespace {

// Shared rules, emitted when used. Runs of digits and whitespace are bounded (a model at
// temperature 0 can otherwise repeat a digit or a newline until max_tokens).
const std::map<std::string, std::string> kPrimitives = {
    {"ws", "| \" \" | \"\\n\" [ \\t]{0,20}"},
    {"value", "object | array | string | number | boolean | null"},
    {"object",
     "\"{\" ws ( string \":\" ws value ws ( \",\" ws string \":\" ws value ws )* )? \"}\""},
    {"array", "\"[\" ws ( value ws ( \",\" ws value ws )* )? \"]\""},
    {"string", "\"\\\"\" char* \"\\\"\""},
    {"char", "[^\"\\\\\\x00-\\x1F\\x7F] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4} )"},
    {"number", "\"-\"? int-part ( \".\" [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,3} )?"},
    {"int-part", "\"0\" | [1-9] [0-9]{0,15}"},
    {"integer", "\"-\"? int-part"},
    {"boolean", "\"true\" | \"false\""},
    {"null", "\"null\""},
    {"date",
     "[0-9]{4} \"-\" ( ( \"0\" [13578] | \"1\" [02] ) \"-\" ( \"0\" [1-9] | [12] [0-9] | "
     "\"3\" [01] ) | ( \"0\" [469] | \"11\" ) \"-\" ( \"0\" [1-9] | [12] [0-9] | \"30\" ) | "
     "\"02-\" ( \"0\" [1-9] | \"1\" [0-9] | \"2\" [0-8] ) )"},
    {"time",
     "( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" [0-9]{1,6} )? "
     "( \"Z\" | [+-] ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] )"},
    {"date-time", "date \"T\" time"},
    {"hex", "[0-9a-fA-F]"},
    {"uuid", "hex{8} \"-\" hex{4} \"-\" hex{4} \"-\" hex{4} \"-\" hex{12}"},
    {"email",
     "[a-zA-Z0-9_+-] [a-zA-Z0-9._+-]{0,31} \"@\" [a-zA-Z0-9] [a-zA-Z0-9-]{0,20} ( \".\" "
     "[a-zA-Z] [a-zA-Z0-9-]{0,20} ){1,3}"},
    {"ipv4", "octet \".\" octet \".\" octet \".\" octet"},
    {"octet", "[0-9] | [1-9] [0-9] | \"1\" [0-9] [0-9] | \"2\" [0-4] [0-9] | \"25\" [0-5]"},
    {"uri",
     "\"http\" \"s\"? \"://\" [a-zA-Z0-9] [a-zA-Z0-9.-]{0,62} ( \"/\" "
     "[a-zA-Z0-9._~%!$&'()*+,;=:@-]{0,64} ){0,8}"},
};

// Which shared rules each one uses.
const std::map<std::string, std::vector<std::string>> kDeps = {
    {"value", {"object", "array", "string", "number", "boolean", "null"}},
    {"object", {"ws", "string", "value"}},
    {"array", {"ws", "value"}},
    {"string", {"char"}},
    {"number", {"int-part"}},
    {"integer", {"int-part"}},
    {"date-time", {"date", "time"}},
    {"uuid", {"hex"}},
    {"ipv4", {"octet"}},
};

const std::set<std::string> kAnnotations = {
    "title",    "description",   "default",  "examples",     "$schema", "$id",
    "$comment", "deprecated",    "readOnly", "writeOnly",    "$defs",   "definitions",
    "strict",   "discriminator", "example",  "externalDocs", "xml",     "$anchor"};

const std::set<std::string> kKeywords = {"type",
                                         "properties",
                                         "required",
                                         "additionalProperties",
                                         "enum",
                                         "const",
                                         "anyOf",
                                         "oneOf",
                                         "allOf",
                                         "$ref",
                                         "items",
                                         "prefixItems",
                                         "minItems",
                                         "maxItems",
                                         "minLength",
                                         "maxLength",
                                         "pattern",
                                         "format",
                                         "minimum",
                                         "maximum",
                                         "exclusiveMinimum",
                                         "exclusiveMaximum",
                                         "nullable"};

const std::set<std::string> kFormats = {"date",  "time", "date-time", "uuid",
                                        "email", "ipv4", "uri"};

constexpr int kMaxSchemaDepth = 128;
constexpr size_t kMaxGrammarText = 4u << 20;

std::string lit(const std::string& s) {
  return gbnf_literal(s);
}

// ---------------------------------------------------------------------------------------
// Integer ranges as decimal text (no leading zeros, no "-0").

std::string digit_range(char lo, char hi) {
  if (lo == hi) return lit(std::string(1, lo));
  return std::string("[") + lo + "-" + hi + "]";
}

// Equal-length decimal strings x <= y: every string between them, same length.
std::string same_len_range(const std::string& x, const std::string& y) {
  const size_t n = x.size();
  if (x == y) return lit(x);
  if (x.find_first_not_of('0') == std::string::npos &&
      y.find_first_not_of('9') == std::string::npos)
    return n == 1 ? "[0-9]" : "[0-9]{" + std::to_string(n) + "}";
  if (n == 1) return digit_range(x[0], y[0]);
  if (x[0] == y[0])
    return lit(std::string(1, x[0])) + " " + same_len_range(x.substr(1), y.substr(1));
  std::vector<std::string> alts;
  alts.push_back(lit(std::string(1, x[0])) + " " +
                 same_len_range(x.substr(1), std::string(n - 1, '9')));
  if (y[0] - x[0] >= 2)
    alts.push_back(digit_range(x[0] + 1, y[0] - 1) +
                   (n - 1 == 1 ? " [0-9]" : " [0-9]{" + std::to_string(n - 1) + "}"));
  alts.push_back(lit(std::string(1, y[0])) + " " +
                 same_len_range(std::string(n - 1, '0'), y.substr(1)));
  std::string out = "(";
  for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : "") + alts[i];
  return out + ")";
}

constexpr int kMaxDigits = 18;  // |integers| < 10^18 (int64 range, and bounded runs)

// Non-negative integers in [a, b]; b < 0: unbounded above (up to kMaxDigits digits).
std::string nonneg_range(int64_t a, int64_t b) {
  const std::string sa = std::to_string(a);
  const int la = static_cast<int>(sa.size());
  const int lb = b < 0 ? kMaxDigits : static_cast<int>(std::to_string(b).size());
  std::vector<std::string> alts;
  for (int L = la; L <= lb; ++L) {
    std::string lo = sa;
    if (L != la) lo = std::string(1, '1').append(L - 1, '0');
    std::string hi = (b >= 0 && L == lb) ? std::to_string(b) : std::string(L, '9');
    if (b < 0 && L > la) {
      // Every longer length at once.
      alts.push_back("[1-9] [0-9]{" + std::to_string(L - 1) + "," + std::to_string(kMaxDigits - 1) +
                     "}");
      break;
    }
    alts.push_back(same_len_range(lo, hi));
  }
  if (alts.size() == 1) return alts[0];
  std::string out = "(";
  for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : "") + alts[i];
  return out + ")";
}

// Integers in [lo, hi] (nullopt: unbounded on that side); "" when empty.
std::string int_range(std::optional<int64_t> lo, std::optional<int64_t> hi) {
  std::vector<std::string> alts;
  // Negative part: -m with m in [max(1, -hi), -lo].
  if (!lo || *lo < 0) {
    const int64_t mlo = (hi && *hi < 0) ? -*hi : 1;
    const int64_t mhi = lo ? -*lo : -1;
    if (mhi < 0 || mlo <= mhi) alts.push_back("\"-\" " + nonneg_range(mlo, mhi));
  }
  if (!hi || *hi >= 0) {
    const int64_t a = lo ? std::max<int64_t>(*lo, 0) : 0;
    const int64_t b = hi ? *hi : -1;
    if (b < 0 || a <= b) alts.push_back(nonneg_range(a, b));
  }
  if (alts.empty()) return "";
  if (alts.size() == 1) return alts[0];
  return "(" + alts[0] + " | " + alts[1] + ")";
}

std::string sanitize(const std::string& s) {
  std::string out;
  for (char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
      out += c;
    else if (!out.empty() && out.back() != '-')
      out += '-';
    if (out.size() >= 32) break;
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out.empty() ? "x" : out;
}

}  // namespace

class SchemaConverter {
 public:
  // The expression for `schema` ($refs resolve inside it).
  std::string add(const ojson& schema, const std::string& hint) {
    roots_.push_back(schema);
    root_ = &roots_.back();
    ++root_index_;
    return visit(*root_, hint, "#", 0);
  }

  std::string rule(const std::string& hint, const std::string& body) {
    return new_rule(hint, body);
  }
  void define(const std::string& name, const std::string& body) { rules_[name] = body; }

  std::string text(const std::string& root_body) const {
    std::string out = "root ::= " + root_body + "\n";
    for (const auto& [name, body] : rules_) {
      out += name + " ::= " + body + "\n";
      if (out.size() > kMaxGrammarText)
        throw SchemaError("", "the schema's grammar is too large (over 4 MiB of rules)");
    }
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& keyword, const std::string& path,
                         const std::string& msg) const {
    throw SchemaError(keyword, "JSON Schema " + (keyword.empty() ? "" : "'" + keyword + "' ") +
                                   "at " + path + ": " + msg);
  }

  void use(const std::string& prim) {
    if (rules_.count(prim)) return;
    rules_[prim] = kPrimitives.at(prim);
    if (auto it = kDeps.find(prim); it != kDeps.end())
      for (const auto& d : it->second) use(d);
  }

  std::string new_rule(const std::string& hint, std::string body) {
    std::string name = sanitize(hint);
    if (rules_.count(name) || kPrimitives.count(name) || name == "root") {
      int i = 2;
      while (rules_.count(name + "-" + std::to_string(i))) ++i;
      name += "-" + std::to_string(i);
    }
    rules_[name] = std::move(body);
    return name;
  }

  const ojson& resolve(const std::string& ref, const std::string& path) const {
    if (ref.empty() || ref[0] != '#')
      fail("$ref", path,
           "only references within the schema (\"#...\") are supported, not '" + ref + "'");
    const ojson* cur = root_;
    size_t i = 1;
    if (i < ref.size() && ref[i] != '/') fail("$ref", path, "bad JSON pointer '" + ref + "'");
    while (i < ref.size()) {
      ++i;  // '/'
      size_t j = ref.find('/', i);
      if (j == std::string::npos) j = ref.size();
      std::string tok = ref.substr(i, j - i);
      std::string unescaped;  // JSON pointer escapes: ~1 is '/', ~0 is '~'
      for (size_t k = 0; k < tok.size(); ++k) {
        if (tok[k] == '~' && k + 1 < tok.size() && (tok[k + 1] == '0' || tok[k + 1] == '1')) {
          unescaped.push_back(tok[k + 1] == '1' ? '/' : '~');
          ++k;
        } else {
          unescaped.push_back(tok[k]);
        }
      }
      tok = std::move(unescaped);
      if (cur->is_object() && cur->contains(tok)) {
        cur = &(*cur)[tok];
      } else if (cur->is_array() && !tok.empty() &&
                 tok.find_first_not_of("0123456789") == std::string::npos && tok.size() < 9 &&
                 std::stoul(tok) < cur->size()) {
        cur = &(*cur)[std::stoul(tok)];
      } else {
        fail("$ref", path, "'" + ref + "' does not resolve");
      }
      i = j;
    }
    return *cur;
  }

  // Merges object schemas of allOf (properties, required; other keys: the later wins).
  ojson merge_all_of(const ojson& s, const std::string& path, int depth) {
    ojson out = s;
    out.erase("allOf");
    std::optional<std::set<std::string>> allowed;  // properties every part admits
    if (out.contains("additionalProperties") && out["additionalProperties"] == false) {
      allowed.emplace();
      if (out.contains("properties") && out["properties"].is_object())
        for (auto& [pk, pv] : out["properties"].items()) allowed->insert(pk);
      out.erase("additionalProperties");
    }
    const ojson& parts = s["allOf"];
    if (!parts.is_array() || parts.empty())
      fail("allOf", path, "'allOf' must be a non-empty array of schemas");
    for (size_t i = 0; i < parts.size(); ++i) {
      const ojson* p = &parts[i];
      for (int hops = 0; p->is_object() && p->contains("$ref"); ++hops) {
        if (hops > 32) fail("$ref", path, "reference chain too long");
        p = &resolve((*p)["$ref"].is_string() ? (*p)["$ref"].get<std::string>() : "", path);
      }
      ojson part = *p;
      if (part.is_object() && part.contains("allOf"))
        part = merge_all_of(part, path + "/allOf/" + std::to_string(i), depth + 1);
      if (!part.is_object() || (part.contains("type") && part["type"] != "object") ||
          part.contains("anyOf") || part.contains("oneOf") || part.contains("enum") ||
          part.contains("const"))
        fail("allOf", path, "only 'allOf' of object schemas is supported");
      if (part.contains("additionalProperties")) {
        const ojson& ap = part["additionalProperties"];
        if (ap.is_boolean() && !ap.get<bool>()) {
          // This part admits only its own properties: the intersection narrows.
          std::set<std::string> mine;
          if (part.contains("properties") && part["properties"].is_object())
            for (auto& [pk, pv] : part["properties"].items()) mine.insert(pk);
          if (!allowed) {
            allowed = mine;
          } else {
            std::set<std::string> both;
            for (const auto& n : *allowed)
              if (mine.count(n)) both.insert(n);
            allowed = both;
          }
        } else if (!(ap.is_boolean() && ap.get<bool>())) {
          fail("allOf", path, "'additionalProperties' schemas inside 'allOf' are not supported");
        }
        part.erase("additionalProperties");
      }
      for (auto& [k, v] : part.items()) {
        if (k == "properties") {
          if (!v.is_object()) fail("properties", path, "'properties' must be an object");
          if (!out.contains("properties")) out["properties"] = ojson::object();
          for (auto& [pk, pv] : v.items()) {
            if (out["properties"].contains(pk) && out["properties"][pk] != pv)
              fail("allOf", path,
                   "property '" + pk + "' is defined differently by two 'allOf' schemas");
            out["properties"][pk] = pv;
          }
        } else if (k == "required") {
          if (!v.is_array()) fail("required", path, "'required' must be an array");
          if (!out.contains("required")) out["required"] = ojson::array();
          for (const auto& r : v)
            if (std::find(out["required"].begin(), out["required"].end(), r) ==
                out["required"].end())
              out["required"].push_back(r);
        } else {
          out[k] = v;
        }
      }
    }
    if (allowed) {
      ojson props = ojson::object();
      if (out.contains("properties"))
        for (auto& [pk, pv] : out["properties"].items())
          if (allowed->count(pk)) props[pk] = pv;
      out["properties"] = props;
      if (out.contains("required"))
        for (const auto& r : out["required"])
          if (r.is_string() && !allowed->count(r.get<std::string>()))
            fail("allOf", path,
                 "property '" + r.get<std::string>() +
                     "' is required but another 'allOf' schema forbids it");
      out["additionalProperties"] = false;
    }
    if (!out.contains("type")) out["type"] = "object";
    return out;
  }

  std::optional<double> num(const ojson& s, const char* k, const std::string& path) {
    if (!s.contains(k)) return std::nullopt;
    if (!s[k].is_number()) fail(k, path, std::string("'") + k + "' must be a number");
    return s[k].get<double>();
  }

  std::optional<int64_t> count(const ojson& s, const char* k, const std::string& path) {
    if (!s.contains(k)) return std::nullopt;
    if (!s[k].is_number_integer() || s[k].get<int64_t>() < 0)
      fail(k, path, std::string("'") + k + "' must be a non-negative integer");
    const int64_t v = s[k].get<int64_t>();
    if (v > kMaxRepetition)
      fail(
          k, path,
          std::string("'") + k + "' above " + std::to_string(kMaxRepetition) + " is not supported");
    return v;
  }

  std::string visit(const ojson& s, const std::string& hint, const std::string& path, int depth) {
    if (depth > kMaxSchemaDepth) fail("", path, "the schema is nested too deeply");
    if (s.is_boolean()) {
      if (s.get<bool>()) {
        use("value");
        return "value";
      }
      fail("", path, "the schema 'false' matches nothing");
    }
    if (!s.is_object()) fail("", path, "a schema must be an object or a boolean");
    for (const auto& [k, v] : s.items())
      if (!kKeywords.count(k) && !kAnnotations.count(k) && k.rfind("x-", 0) != 0)
        fail(k, path, "keyword '" + k + "' is not supported");

    if (s.contains("$ref")) {
      if (!s["$ref"].is_string()) fail("$ref", path, "'$ref' must be a string");
      const std::string ref = s["$ref"].get<std::string>();
      for (const auto& [k, v] : s.items())
        if (kKeywords.count(k) && k != "$ref")
          fail(k, path, "keywords beside '$ref' are not supported");
      const std::string ref_key = std::to_string(root_index_) + ref;
      if (auto it = refs_.find(ref_key); it != refs_.end()) return it->second;
      const ojson& target = resolve(ref, path);
      const std::string name = new_rule("ref-" + ref.substr(ref.rfind('/') + 1), "");
      refs_[ref_key] = name;  // before visiting: recursive references find it
      rules_[name] = visit(target, name, ref, depth + 1);
      return name;
    }
    if (s.contains("allOf")) return visit(merge_all_of(s, path, depth), hint, path, depth + 1);
    for (const char* k : {"anyOf", "oneOf"}) {
      if (!s.contains(k)) continue;
      const ojson& alts = s[k];
      if (!alts.is_array() || alts.empty())
        fail(k, path, std::string("'") + k + "' must be a non-empty array of schemas");
      ojson base = s;
      base.erase(k);
      bool base_constrains = false;
      for (const auto& [bk, bv] : base.items())
        if (kKeywords.count(bk)) base_constrains = true;
      std::string out = "(";
      for (size_t i = 0; i < alts.size(); ++i) {
        ojson alt = alts[i];
        if (base_constrains) {
          // Sibling keywords apply to every alternative.
          if (!alt.is_object()) fail(k, path, "alternatives must be schema objects");
          ojson merged = base;
          for (auto& [ak, av] : alt.items()) merged[ak] = av;
          alt = std::move(merged);
        }
        out += (i ? " | " : "") + visit(alt, hint + "-" + std::to_string(i),
                                        path + "/" + k + "/" + std::to_string(i), depth + 1);
      }
      return out + ")";
    }
    const bool nullable = s.contains("nullable") && s["nullable"] == true;
    if (nullable) {
      ojson inner = s;
      inner.erase("nullable");
      use("null");
      return "(" + visit(inner, hint, path, depth + 1) + " | null)";
    }
    if (s.contains("const")) return lit(s["const"].dump());
    if (s.contains("enum")) {
      const ojson& e = s["enum"];
      if (!e.is_array() || e.empty()) fail("enum", path, "'enum' must be a non-empty array");
      std::string out = "(";
      for (size_t i = 0; i < e.size(); ++i) out += (i ? " | " : "") + lit(e[i].dump());
      return out + ")";
    }

    std::vector<std::string> types;
    if (s.contains("type")) {
      const ojson& t = s["type"];
      if (t.is_string()) {
        types.push_back(t.get<std::string>());
      } else if (t.is_array() && !t.empty()) {
        for (const auto& x : t) {
          if (!x.is_string()) fail("type", path, "'type' must be a string or array of strings");
          types.push_back(x.get<std::string>());
        }
      } else {
        fail("type", path, "'type' must be a string or array of strings");
      }
    } else if (s.contains("properties") || s.contains("additionalProperties") ||
               s.contains("required")) {
      types = {"object"};
    } else if (s.contains("items") || s.contains("prefixItems") || s.contains("minItems") ||
               s.contains("maxItems")) {
      types = {"array"};
    } else if (s.contains("pattern") || s.contains("format") || s.contains("minLength") ||
               s.contains("maxLength")) {
      types = {"string"};
    } else if (s.contains("minimum") || s.contains("maximum") || s.contains("exclusiveMinimum") ||
               s.contains("exclusiveMaximum")) {
      types = {"number"};
    } else {
      use("value");
      return "value";
    }
    if (types.size() > 1) {
      std::string out = "(";
      for (size_t i = 0; i < types.size(); ++i) {
        ojson one = s;
        one["type"] = types[i];
        out += (i ? " | " : "") + visit(one, hint, path, depth + 1);
      }
      return out + ")";
    }
    const std::string& type = types[0];
    if (type == "object") return object(s, hint, path, depth);
    if (type == "array") return array(s, hint, path, depth);
    if (type == "string") return string(s, hint, path);
    if (type == "integer" || type == "number") return number(s, type == "integer", hint, path);
    if (type == "boolean") {
      use("boolean");
      return "boolean";
    }
    if (type == "null") {
      use("null");
      return "null";
    }
    fail("type", path, "unknown type '" + type + "'");
  }

  // A key that is none of `names` (JSON-escaped, no quotes): a rule per trie node of the
  // names' code points; leaving the trie with a character no name continues with opens a
  // free tail. No escapes inside the trie, so a key cannot spell a name in disguise.
  std::string key_except(const std::vector<std::string>& names, const std::string& hint) {
    use("char");
    struct TrieNode {
      std::map<std::string, int> kids;  // one UTF-8 character -> node
      bool terminal = false;
    };
    std::vector<TrieNode> t(1);
    for (const std::string& n : names) {
      int cur = 0;
      for (size_t i = 0; i < n.size();) {
        const unsigned char c = static_cast<unsigned char>(n[i]);
        const size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : 4;
        const std::string ch = n.substr(i, len);
        i += len;
        auto it = t[cur].kids.find(ch);
        if (it == t[cur].kids.end()) {
          t.push_back({});
          it = t[cur].kids.emplace(ch, static_cast<int>(t.size() - 1)).first;
        }
        cur = it->second;
      }
      t[cur].terminal = true;
    }
    std::vector<std::string> names_of(t.size());
    for (size_t i = 0; i < t.size(); ++i) names_of[i] = new_rule(hint + "-key", "");
    for (size_t i = 0; i < t.size(); ++i) {
      std::vector<std::string> alts;
      if (!t[i].terminal) alts.push_back("\"\\\"\"");
      // Free tail: an unescaped character no name continues with here.
      std::string excl = "\"\\\\\\x00-\\x1F\\x7F";
      bool non_ascii_child = false;
      for (const auto& [ch, k] : t[i].kids) {
        if (ch.size() > 1) {
          non_ascii_child = true;
          continue;
        }
        const char c = ch[0];
        if (c == ']' || c == '\\' || c == '^' || c == '-' || c == '[')
          excl += std::string("\\") + c;
        else
          excl += c;
      }
      if (non_ascii_child) excl += "\\x80-\\U0010FFFF";
      alts.push_back("[^" + excl + "] char* \"\\\"\"");
      for (const auto& [ch, k] : t[i].kids)
        if (ch != "\\") alts.push_back(lit(ch) + " " + names_of[k]);
      std::string body;
      for (size_t a = 0; a < alts.size(); ++a) body += (a ? " | " : "") + alts[a];
      rules_[names_of[i]] = body;
    }
    return "\"\\\"\" " + names_of[0];
  }

  std::string object(const ojson& s, const std::string& hint, const std::string& path, int depth) {
    use("ws");
    const bool has_props = s.contains("properties");
    const ojson props = has_props ? s["properties"] : ojson::object();
    if (!props.is_object()) fail("properties", path, "'properties' must be an object");
    std::set<std::string> required;
    if (s.contains("required")) {
      if (!s["required"].is_array()) fail("required", path, "'required' must be an array");
      for (const auto& r : s["required"]) {
        if (!r.is_string()) fail("required", path, "'required' must hold strings");
        required.insert(r.get<std::string>());
      }
    }
    // Extra properties: only where the schema allows them explicitly (or says nothing
    // at all about the object's properties).
    std::optional<std::string> extra_value;
    if (s.contains("additionalProperties")) {
      const ojson& ap = s["additionalProperties"];
      if (!(ap.is_boolean() && !ap.get<bool>()))
        extra_value = visit(ap, hint + "-additional", path + "/additionalProperties", depth + 1);
    } else if (!has_props && required.empty()) {
      use("object");
      return "object";
    }

    struct Item {
      std::string kv;
      bool required;
    };
    std::vector<Item> items;
    std::vector<std::string> names;
    for (const auto& [k, v] : props.items()) {
      const std::string key_json = ojson(k).dump();
      names.push_back(key_json.substr(1, key_json.size() - 2));
      const std::string val = visit(v, hint + "-" + k, path + "/properties/" + k, depth + 1);
      items.push_back({lit(key_json) + " \":\" ws " + val + " ws", required.count(k) > 0});
    }
    for (const std::string& r : required)
      if (!props.contains(r)) {
        use("value");
        const std::string key_json = ojson(r).dump();
        names.push_back(key_json.substr(1, key_json.size() - 2));
        items.push_back({lit(key_json) + " \":\" ws value ws", true});
      }
    std::string extra_kv;
    if (extra_value) extra_kv = key_except(names, hint) + " \":\" ws " + *extra_value + " ws";

    // Two chains of rules, linear in the number of properties (the last reference of each
    // body is a tail call): W(i): items i.. after something was written (each with its
    // comma, optional ones optional, then any extra properties); N(i): items i.. with
    // nothing written yet (the first written item has no comma).
    std::vector<std::string> w(items.size() + 1), n(items.size() + 1);
    w[items.size()] =
        new_rule(hint + "-more", extra_value ? "( \",\" ws " + extra_kv + " )*" : "\"\"");
    n[items.size()] = new_rule(
        hint + "-rest", extra_value ? "( " + extra_kv + " " + w[items.size()] + " )?" : "\"\"");
    for (size_t i = items.size(); i-- > 0;) {
      w[i] = new_rule(hint + "-more", items[i].required
                                          ? "\",\" ws " + items[i].kv + " " + w[i + 1]
                                          : "( \",\" ws " + items[i].kv + " )? " + w[i + 1]);
      std::string body = items[i].kv + " " + w[i + 1];
      if (!items[i].required) body += " | " + n[i + 1];
      n[i] = new_rule(hint + "-props", body);
    }
    const std::string& next = n[0];
    return "\"{\" ws " + next + " \"}\"";
  }

  std::string array(const ojson& s, const std::string& hint, const std::string& path, int depth) {
    use("ws");
    const int64_t min = count(s, "minItems", path).value_or(0);
    const std::optional<int64_t> max = count(s, "maxItems", path);
    if (max && *max < min) fail("maxItems", path, "'maxItems' is below 'minItems'");
    std::vector<std::string> prefix;
    if (s.contains("prefixItems")) {
      const ojson& p = s["prefixItems"];
      if (!p.is_array()) fail("prefixItems", path, "'prefixItems' must be an array of schemas");
      for (size_t i = 0; i < p.size() && (!max || static_cast<int64_t>(i) < *max); ++i)
        prefix.push_back(visit(p[i], hint + "-item" + std::to_string(i),
                               path + "/prefixItems/" + std::to_string(i), depth + 1));
    }
    std::optional<std::string> item;  // nullopt: no items beyond the prefix
    if (!s.contains("items")) {
      use("value");
      item = "value";
    } else if (!(s["items"].is_boolean() && !s["items"].get<bool>())) {
      item = visit(s["items"], hint + "-item", path + "/items", depth + 1);
    }
    const int64_t k = static_cast<int64_t>(prefix.size());
    if (!item && min > k) fail("minItems", path, "'minItems' exceeds the items the schema allows");
    auto sep = [](int64_t i) { return i == 0 ? std::string() : std::string("\",\" ws "); };
    // Items beyond the prefix: count in [max(0, min - k), max - k].
    std::string tail;
    if (item && (!max || *max > k)) {
      const int64_t lo = std::max<int64_t>(0, min - k);
      const std::optional<int64_t> hi = max ? std::optional<int64_t>(*max - k) : std::nullopt;
      const std::string one = *item + " ws";
      if (k > 0) {
        tail = "( \",\" ws " + one + " ){" + std::to_string(lo) + "," +
               (hi ? std::to_string(*hi) : "") + "}";
      } else {
        // The first has no comma.
        const std::string rest = "( \",\" ws " + one + " ){" + std::to_string(lo > 0 ? lo - 1 : 0) +
                                 "," + (hi ? std::to_string(*hi - 1) : "") + "}";
        tail = lo > 0 ? one + " " + rest : "( " + one + " " + rest + " )?";
      }
    }
    // The prefix: item i optional once min is reached (and then everything after it too).
    std::string body = tail;
    for (int64_t i = k; i-- > 0;) {
      std::string part = sep(i) + prefix[i] + " ws" + (body.empty() ? "" : " " + body);
      body = i >= min ? "( " + part + " )?" : part;
    }
    return "\"[\" ws " + (body.empty() ? std::string() : body + " ") + "\"]\"";
  }

  std::string string(const ojson& s, const std::string& hint, const std::string& path) {
    const std::optional<int64_t> min = count(s, "minLength", path),
                                 max = count(s, "maxLength", path);
    if (max && min && *max < *min) fail("maxLength", path, "'maxLength' is below 'minLength'");
    const bool has_len = min || max;
    if (s.contains("format")) {
      if (!s["format"].is_string()) fail("format", path, "'format' must be a string");
      const std::string f = s["format"].get<std::string>();
      if (!kFormats.count(f)) fail("format", path, "format '" + f + "' is not supported");
      if (has_len || s.contains("pattern"))
        fail(has_len ? "minLength" : "pattern", path,
             "a length or pattern beside 'format' is not supported");
      use(f);
      return "\"\\\"\" " + f + " \"\\\"\"";
    }
    if (s.contains("pattern")) {
      if (!s["pattern"].is_string()) fail("pattern", path, "'pattern' must be a string");
      if (has_len)
        fail(min ? "minLength" : "maxLength", path, "a length beside 'pattern' is not supported");
      std::string e;
      try {
        e = regex_to_gbnf_expr(s["pattern"].get<std::string>(), true);
      } catch (const SchemaError&) {
        throw;
      } catch (const GrammarError& err) {
        fail("pattern", path, err.what());
      }
      return "\"\\\"\" " + new_rule(hint + "-pattern", e) + " \"\\\"\"";
    }
    use("string");
    if (!has_len) return "string";
    return "\"\\\"\" char{" + std::to_string(min.value_or(0)) + "," +
           (max ? std::to_string(*max) : "") + "} \"\\\"\"";
  }

  std::string number(const ojson& s, bool integer, const std::string& hint,
                     const std::string& path) {
    std::optional<double> lo = num(s, "minimum", path), hi = num(s, "maximum", path);
    bool lo_x = false, hi_x = false;
    // Draft 4 wrote exclusiveMinimum: true beside minimum; later drafts a number.
    for (auto [k, bound, excl] :
         {std::tuple{"exclusiveMinimum", &lo, &lo_x}, std::tuple{"exclusiveMaximum", &hi, &hi_x}}) {
      if (!s.contains(k)) continue;
      const ojson& v = s[k];
      if (v.is_boolean()) {
        *excl = v.get<bool>();
      } else if (v.is_number()) {
        const double x = v.get<double>();
        const bool tighter = !*bound || (k[9] == 'M' && k[10] == 'i' ? x >= **bound : x <= **bound);
        if (tighter) {
          *bound = x;
          *excl = true;
        }
      } else {
        fail(k, path, std::string("'") + k + "' must be a number");
      }
    }
    if (!lo && !hi) {
      use(integer ? "integer" : "number");
      return integer ? "integer" : "number";
    }
    constexpr double kLimit = 1e17;
    if ((lo && *lo > kLimit) || (hi && *hi < -kLimit))
      fail(lo && *lo > kLimit ? "minimum" : "maximum", path, "bound out of the supported range");
    if (lo && *lo < -kLimit) lo.reset();
    if (hi && *hi > kLimit) hi.reset();
    // Integer values in range.
    std::optional<int64_t> ilo, ihi;
    if (lo) ilo = static_cast<int64_t>(lo_x ? std::floor(*lo) + 1 : std::ceil(*lo));
    if (hi) ihi = static_cast<int64_t>(hi_x ? std::ceil(*hi) - 1 : std::floor(*hi));
    std::vector<std::string> alts;
    if (!ilo || !ihi || *ilo <= *ihi) {
      const std::string r = int_range(ilo, ihi);
      if (!r.empty()) alts.push_back(r);
    }
    if (!integer) {
      // "k.ddd" (k >= 0) lies in [k, k+1): fits when k >= lo (> lo if exclusive) and
      // k + 1 <= hi. "-k.ddd" lies in (-(k+1), -k]: fits when -(k+1) >= lo and -k <= hi
      // (< hi if exclusive).
      const std::string frac = " \".\" [0-9]{1,15}";
      std::optional<int64_t> plo = int64_t{0}, phi;
      if (lo)
        plo =
            std::max<int64_t>(0, static_cast<int64_t>(lo_x ? std::floor(*lo) + 1 : std::ceil(*lo)));
      if (hi) phi = static_cast<int64_t>(std::floor(*hi)) - 1;
      if (!phi || *phi >= *plo) alts.push_back(nonneg_range(*plo, phi ? *phi : -1) + frac);
      int64_t nlo = 0;
      std::optional<int64_t> nhi;
      if (hi)
        nlo = std::max<int64_t>(
            0, static_cast<int64_t>(hi_x ? std::floor(-*hi) + 1 : std::ceil(-*hi)));
      if (lo) nhi = static_cast<int64_t>(std::floor(-*lo)) - 1;
      if (!nhi || *nhi >= nlo) alts.push_back("\"-\" " + nonneg_range(nlo, nhi ? *nhi : -1) + frac);
      // At an exclusive integer bound k itself: "k.ddd" with some non-zero digit.
      const std::string nonzero = " \".\" \"0\"{0,14} [1-9] [0-9]{0,14}";
      if (lo && lo_x && *lo >= 0 && std::floor(*lo) == *lo && (!hi || *lo + 1 <= *hi))
        alts.push_back(nonneg_range(static_cast<int64_t>(*lo), static_cast<int64_t>(*lo)) +
                       nonzero);
      if (hi && hi_x && *hi <= 0 && std::floor(*hi) == *hi && (!lo || -*hi + 1 <= -*lo))
        alts.push_back("\"-\" " +
                       nonneg_range(static_cast<int64_t>(-*hi), static_cast<int64_t>(-*hi)) +
                       nonzero);
    }
    if (alts.empty()) fail(lo ? "minimum" : "maximum", path, "no number satisfies the bounds");
    std::string body;
    for (size_t i = 0; i < alts.size(); ++i) body += (i ? " | " : "") + alts[i];
    return new_rule(hint + (integer ? "-int" : "-num"), body);
  }

  std::deque<ojson> roots_;  // stable addresses
  const ojson* root_ = nullptr;
  int root_index_ = 0;
  std::map<std::string, std::string> rules_;
  std::map<std::string, std::string> refs_;  // root index + $ref -> rule
};

JsonSchemaGrammar::JsonSchemaGrammar() : c_(std::make_unique<SchemaConverter>()) {}
JsonSchemaGrammar::~JsonSchemaGrammar() = default;
std::string JsonSchemaGrammar::add(const ojson& schema, const std::string& hint) {
  return c_->add(schema, hint);
}
std::string JsonSchemaGrammar::rule(const std::string& hint, const std::string& body) {
  return c_->rule(hint, body);
}
void JsonSchemaGrammar::define(const std::string& name, const std::string& body) {
  c_->define(name, body);
}
std::string JsonSchemaGrammar::text(const std::string& root_body) const {
  return c_->text(root_body);
}

std::string json_schema_to_gbnf(const ojson& schema) {
  JsonSchemaGrammar g;
  const std::string e = g.add(schema, "root");
  return g.text(e);
}

std::string json_object_gbnf() {
  return json_schema_to_gbnf(ojson{{"type", "object"}});
}

std::string choice_gbnf(const std::vector<std::string>& choices) {
  std::string out = "root ::= ";
  for (size_t i = 0; i < choices.size(); ++i) out += (i ? " | " : "") + gbnf_literal(choices[i]);
  return out + "\n";
}

}  // namespace tessera::structured
