#include "server/grammar_compiler.h"

#include <set>

#include "server/api_error.h"
#include "structured/json_schema.h"
#include "structured/regex.h"
#include "structured/token_mask.h"
#include "tokenizer/tokenizer.h"

namespace tessera {

using namespace structured;
using Clock = std::chrono::steady_clock;

namespace {

[[noreturn]] void refuse(const std::string& field, const GrammarError& e) {
  // Schema errors name the keyword and its place; regex and GBNF errors their position.
  throw ApiError(400, "'" + field + "' cannot be enforced: " + std::string(e.what()), field,
                 "invalid_output_constraint");
}

// Rules for text in which `t` never occurs (a KMP automaton, one rule per state: state j
// has matched t[0, j)). Returns the start rule's name.
std::string avoid_rules(JsonSchemaGrammar& g, const std::string& t, const std::string& hint) {
  const size_t n = t.size();
  std::vector<size_t> fail(n + 1, 0);
  for (size_t i = 1, k = 0; i < n; ++i) {
    while (k > 0 && t[i] != t[k]) k = fail[k];
    if (t[i] == t[k]) ++k;
    fail[i + 1] = k;
  }
  auto delta = [&](size_t j, char c) {
    while (j > 0 && t[j] != c) j = fail[j];
    return t[j] == c ? j + 1 : 0;
  };
  std::set<char> chars(t.begin(), t.end());
  std::string others = "[^";
  for (char c : chars) {
    if (c == ']' || c == '\\' || c == '^' || c == '-' || c == '[') others += '\\';
    others += c;
  }
  others += "]";
  std::vector<std::string> names(n);
  for (size_t j = 0; j < n; ++j) names[j] = g.rule(hint + "-" + std::to_string(j), "\"\"");
  for (size_t j = 0; j < n; ++j) {
    std::string body = "\"\" | " + others + " " + names[0];
    for (char c : chars) {
      const size_t next = delta(j, c);
      if (next < n) body += " | " + gbnf_literal(std::string(1, c)) + " " + names[next];
    }
    g.define(names[j], body);
  }
  return names[0];
}

// GBNF rules for text in which `t` never occurs, named prefix + state; the start rule is
// prefix + "0".
std::string avoid_gbnf(const std::string& t, const std::string& prefix) {
  const size_t n = t.size();
  std::vector<size_t> fail(n + 1, 0);
  for (size_t i = 1, k = 0; i < n; ++i) {
    while (k > 0 && t[i] != t[k]) k = fail[k];
    if (t[i] == t[k]) ++k;
    fail[i + 1] = k;
  }
  std::set<char> chars(t.begin(), t.end());
  std::string others = "[^";
  for (char c : chars) {
    if (c == ']' || c == '\\' || c == '^' || c == '-' || c == '[') others += '\\';
    others += c;
  }
  others += "]";
  std::string out;
  for (size_t j = 0; j < n; ++j) {
    out += prefix + std::to_string(j) + " ::= \"\" | " + others + " " + prefix + "0";
    for (char c : chars) {
      size_t k = j;
      while (k > 0 && t[k] != c) k = fail[k];
      const size_t next = t[k] == c ? k + 1 : 0;
      if (next < n)
        out += " | " + gbnf_literal(std::string(1, c)) + " " + prefix + std::to_string(next);
    }
    out += "\n";
  }
  return out;
}

}  // namespace

std::string with_reasoning_gbnf(const std::string& gbnf, bool starts_in_reasoning,
                                std::string& new_root) {
  new_root = "tessera-reasoned";
  std::string out = gbnf + "\n" + avoid_gbnf("</think>", "tessera-thought-");
  const std::string thought = "tessera-thought-0 \"</think>\" [ \\t\\n]{0,4} root";
  if (starts_in_reasoning)
    out += new_root + " ::= " + thought + "\n";
  else
    out += new_root + " ::= [ \\t\\n]{0,4} \"<think>\" " + thought + " | root\n";
  return out;
}

std::string constraint_gbnf(const OutputConstraint& c) {
  try {
    switch (c.kind) {
      case ConstraintKind::NONE:
        return "";
      case ConstraintKind::JSON_OBJECT:
        return json_object_gbnf();
      case ConstraintKind::JSON_SCHEMA:
        return json_schema_to_gbnf(c.schema);
      case ConstraintKind::REGEX:
        return regex_to_gbnf(c.pattern);
      case ConstraintKind::CHOICE:
        return choice_gbnf(c.choices);
      case ConstraintKind::GRAMMAR:
        return c.grammar;
    }
  } catch (const GrammarError& e) {
    refuse(c.field, e);
  }
  return "";
}

std::string tool_call_gbnf(const ToolCallGrammarSpec& spec) {
  JsonSchemaGrammar g;
  std::string shapes;
  try {
    for (size_t i = 0; i < spec.shapes.size(); ++i) {
      const ToolCallShape& s = spec.shapes[i];
      std::string e = g.add(s.schema, "call" + std::to_string(i));
      if (!s.begin.empty()) e = gbnf_literal(s.begin) + " " + e;
      if (!s.end.empty()) e.append(" ").append(gbnf_literal(s.end));
      shapes += (i ? " | " : "") + e;
    }
  } catch (const GrammarError& e) {
    refuse("tools", e);
  }
  const std::string shape = g.rule("call", shapes);
  std::string calls;
  if (!spec.list_begin.empty()) calls += gbnf_literal(spec.list_begin) + " ";
  calls += shape;
  if (spec.repeat)
    calls += " ( " + (spec.separator.empty() ? std::string() : gbnf_literal(spec.separator) + " ") +
             shape + " )*";
  if (!spec.list_end.empty()) calls.append(" ").append(gbnf_literal(spec.list_end));
  if (spec.triggers.empty()) return g.text(calls);

  const std::string calls_rule = g.rule("calls", calls);
  const std::string& t = spec.triggers.front();
  if (!spec.trigger_at_start) {
    // Free text in which the trigger never occurs, then optionally the calls.
    const std::string free = avoid_rules(g, t, "free");
    return g.text(free + " " + calls_rule + "?");
  }
  // The answer is a call only if it starts (after whitespace) with the trigger: otherwise
  // it deviates from the trigger somewhere (at its first character: not whitespace).
  std::vector<std::string> nodes(t.size());
  for (size_t j = 0; j < t.size(); ++j) nodes[j] = g.rule("lead-" + std::to_string(j), "\"\"");
  for (size_t j = 0; j < t.size(); ++j) {
    std::string not_c = "[^";
    const char c = t[j];
    if (c == ']' || c == '\\' || c == '^' || c == '-' || c == '[') not_c += '\\';
    not_c += c;
    if (j == 0) not_c += " \\t\\n\\r";
    not_c += "]";
    std::string body = "\"\" | " + not_c + " .*";
    if (j + 1 < t.size()) body += " | " + gbnf_literal(std::string(1, c)) + " " + nodes[j + 1];
    g.define(nodes[j], body);
  }
  return g.text("[ \\t\\n]{0,8} " + calls_rule + " | [ \\t\\n]* " + nodes[0]);
}

std::shared_ptr<const TokenVocab> GrammarCompiler::vocab(const std::vector<std::string>& specials) {
  // Called with mu_ held.
  auto it = vocabs_.find(specials);
  if (it != vocabs_.end()) return it->second;
  auto v = std::make_shared<const TokenVocab>(tok_, specials);
  vocabs_.emplace(specials, v);
  return v;
}

std::shared_ptr<const CompiledGrammar> GrammarCompiler::compile_gbnf(
    const std::string& gbnf, const std::string& field,
    const std::vector<std::string>& special_literals, const std::string& root) {
  std::string key = root + '\0' + gbnf;
  for (const auto& s : special_literals) key += '\0' + s;
  std::shared_ptr<const TokenVocab> v;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = index_.find(key); it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      ++stats_.cache_hits;
      return it->second->second;
    }
    v = vocab(special_literals);
  }
  const Clock::time_point t0 = Clock::now();
  std::shared_ptr<CompiledGrammar> cg;
  try {
    cg = std::make_shared<CompiledGrammar>(parse_gbnf(gbnf, root), v);
  } catch (const GrammarError& e) {
    refuse(field, e);
  }
  cg->precompute();
  const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.compiled;
  stats_.compile_seconds += dt;
  stats_.last_compile_seconds = dt;
  if (auto it = index_.find(key); it != index_.end()) return it->second->second;
  lru_.emplace_front(key, cg);
  index_[key] = lru_.begin();
  while (lru_.size() > kCacheSize) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
  return cg;
}

std::shared_ptr<const CompiledGrammar> GrammarCompiler::compile(const OutputConstraint& c,
                                                                const ToolRequest& tools,
                                                                ToolSyntax syntax, bool lazy_tools,
                                                                ReasoningSyntax reasoning,
                                                                bool starts_in_reasoning) {
  std::string gbnf, field;
  std::vector<std::string> specials;
  if (c.kind != ConstraintKind::NONE) {
    gbnf = constraint_gbnf(c);
    field = c.field;
  } else {
    if (!tools.active()) return nullptr;
    if (tools.choice == ToolChoice::AUTO && !lazy_tools) return nullptr;
    const ToolCallGrammarSpec spec = tool_call_grammar_spec(syntax, tools);
    gbnf = tool_call_gbnf(spec);
    field = "tools";
    specials = spec.special_literals;
  }
  if (reasoning == ReasoningSyntax::NONE) return compile_gbnf(gbnf, field, specials);
  std::string root;
  gbnf = with_reasoning_gbnf(gbnf, starts_in_reasoning, root);
  specials.push_back("<think>");
  specials.push_back("</think>");
  return compile_gbnf(gbnf, field, specials, root);
}

GrammarCompiler::Stats GrammarCompiler::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace tessera
