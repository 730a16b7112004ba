#include "template/jinja_builtins.h"

#include <utf8proc.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "template/jinja_text.h"

namespace tessera::jinja {

namespace {

const Value kNone = Value::none();

[[noreturn]] void type_error(const std::string& msg) {
  throw Error(msg);
}

const std::string& require_string(const Value& v, const char* what) {
  v.require_defined();
  if (!v.is_string()) type_error(std::string(what) + " expects a string, got " + v.type_name());
  return v.str();
}

int64_t require_int(const Value& v, const char* what) {
  v.require_defined();
  if (!v.is_int() && !v.is_bool()) {
    type_error(std::string(what) + " expects an integer, got " + v.type_name());
  }
  return v.as_int();
}

// Optional argument: positional index i or keyword `name`, else `dflt`.
Value arg(const CallArgs& a, size_t i, std::string_view name, const Value& dflt = kNone) {
  const Value* v = a.get(i, name);
  return v ? *v : dflt;
}

Value str_list(const std::vector<std::string>& parts) {
  std::vector<Value> items;
  items.reserve(parts.size());
  for (const auto& p : parts) items.emplace_back(p);
  return Value::list(std::move(items));
}

// ---- lookup ---------------------------------------------------------------------------------

bool is_str_method(const std::string& n) {
  static const char* const kNames[] = {"strip",      "lstrip",   "rstrip",  "split",  "splitlines",
                                       "startswith", "endswith", "upper",   "lower",  "title",
                                       "capitalize", "replace",  "join",    "find",   "count",
                                       "format",     "isdigit",  "isspace", "isalpha"};
  return std::find(std::begin(kNames), std::end(kNames), n) != std::end(kNames);
}

bool is_dict_method(const std::string& n) {
  return n == "items" || n == "keys" || n == "values" || n == "get";
}

std::string object_label(const Value& obj) {
  if (obj.is_none()) return "'None'";
  return "'" + obj.type_name() + " object'";
}

int64_t normalize_index(int64_t i, int64_t n) {
  return i < 0 ? i + n : i;
}

}  // namespace

Value get_attr(const Value& obj, const std::string& name) {
  obj.require_defined();
  bool method = (obj.is_string() && is_str_method(name)) ||
                (obj.is_dict() && !obj.dict_data().is_namespace && is_dict_method(name));
  if (method) {
    return Value::function([obj, name](const CallArgs& a) { return *call_method(obj, name, a); });
  }
  if (obj.is_dict()) {
    if (const Value* v = obj.dict_data().find_key(name)) return *v;
  }
  return Value::undefined(object_label(obj) + " has no attribute '" + name + "'");
}

Value get_item(const Value& obj, const Value& key) {
  obj.require_defined();
  if (obj.is_dict()) {
    if (const Value* v = obj.dict_data().find(key)) return *v;
  } else if ((obj.is_list() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    if (obj.is_list()) {
      const auto& items = obj.items();
      int64_t i = normalize_index(key.as_int(), static_cast<int64_t>(items.size()));
      if (i >= 0 && i < static_cast<int64_t>(items.size())) return items[static_cast<size_t>(i)];
    } else {
      std::u32string u = utf8_decode(obj.str());
      int64_t i = normalize_index(key.as_int(), static_cast<int64_t>(u.size()));
      if (i >= 0 && i < static_cast<int64_t>(u.size())) {
        return Value(utf8_encode(std::u32string(1, u[static_cast<size_t>(i)])));
      }
    }
    return Value::undefined(object_label(obj) + " has no element " + key.repr());
  }
  if (key.is_string()) return get_attr(obj, key.str());
  return Value::undefined(object_label(obj) + " has no element " + key.repr());
}

Value get_slice(const Value& obj, const Value* start, const Value* stop, const Value* step) {
  obj.require_defined();
  auto opt = [](const Value* v) -> std::optional<int64_t> {
    if (!v || v->is_none()) return std::nullopt;
    return require_int(*v, "slice index");
  };
  std::optional<int64_t> b = opt(start), e = opt(stop), s = opt(step);
  int64_t st = s.value_or(1);
  if (st == 0) type_error("slice step cannot be zero");

  auto pick = [&](int64_t n, auto&& emit) {
    // CPython's PySlice_AdjustIndices.
    int64_t lo, hi;
    if (st > 0) {
      lo = b ? (*b < 0 ? std::max<int64_t>(*b + n, 0) : std::min(*b, n)) : 0;
      hi = e ? (*e < 0 ? std::max<int64_t>(*e + n, 0) : std::min(*e, n)) : n;
      for (int64_t i = lo; i < hi; i += st) emit(i);
    } else {
      lo = b ? (*b < 0 ? std::max<int64_t>(*b + n, -1) : std::min(*b, n - 1)) : n - 1;
      hi = e ? (*e < 0 ? std::max<int64_t>(*e + n, -1) : std::min(*e, n - 1)) : -1;
      for (int64_t i = lo; i > hi; i += st) emit(i);
    }
  };
  if (obj.is_string()) {
    std::u32string u = utf8_decode(obj.str());
    std::u32string out;
    pick(static_cast<int64_t>(u.size()),
         [&](int64_t i) { out.push_back(u[static_cast<size_t>(i)]); });
    return Value(utf8_encode(out));
  }
  if (obj.is_list()) {
    const auto& items = obj.items();
    std::vector<Value> out;
    pick(static_cast<int64_t>(items.size()),
         [&](int64_t i) { out.push_back(items[static_cast<size_t>(i)]); });
    return Value::list(std::move(out), obj.list_data().is_tuple);
  }
  type_error("'" + obj.type_name() + "' object is not subscriptable");
}

// ---- methods --------------------------------------------------------------------------------

namespace {

bool starts_or_ends(const std::string& s, const Value& affix, bool start) {
  auto one = [&](const std::string& a) {
    if (a.size() > s.size()) return false;
    return start ? s.compare(0, a.size(), a) == 0
                 : s.compare(s.size() - a.size(), a.size(), a) == 0;
  };
  if (affix.is_list()) {
    for (const auto& a : affix.items()) {
      if (one(require_string(a, "startswith/endswith"))) return true;
    }
    return false;
  }
  return one(require_string(affix, "startswith/endswith"));
}

int64_t count_codepoints(std::string_view s) {
  return static_cast<int64_t>(utf8_decode(s).size());
}

// str.format with "{}", "{0}" and "{name}" fields (no format specs), "{{" and "}}" escapes.
std::string py_format(const std::string& fmt, const CallArgs& a) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    char c = fmt[i];
    if (c == '{' && i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{';
      ++i;
    } else if (c == '}' && i + 1 < fmt.size() && fmt[i + 1] == '}') {
      out += '}';
      ++i;
    } else if (c == '{') {
      size_t close = fmt.find('}', i);
      if (close == std::string::npos) type_error("Single '{' encountered in format string");
      std::string field = fmt.substr(i + 1, close - i - 1);
      if (field.find_first_of(":!") != std::string::npos) {
        type_error("format specs are not supported in str.format");
      }
      const Value* v = nullptr;
      if (field.empty()) {
        if (auto_index < a.positional.size()) v = &a.positional[auto_index++];
      } else if (std::isdigit(static_cast<unsigned char>(field[0]))) {
        size_t idx = std::strtoul(field.c_str(), nullptr, 10);
        if (idx < a.positional.size()) v = &a.positional[idx];
      } else {
        for (const auto& [k, kv] : a.keyword) {
          if (k == field) v = &kv;
        }
      }
      if (!v) type_error("Replacement index or key '" + field + "' out of range in format");
      out += v->to_str();
      i = close;
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::optional<Value> call_method(const Value& obj, const std::string& name, const CallArgs& a) {
  if (obj.is_string() && is_str_method(name)) {
    const std::string& s = obj.str();
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      const Value c = arg(a, 0, "chars");
      const std::string* chars = c.is_none() ? nullptr : &require_string(c, name.c_str());
      return Value(py_strip(s, chars, name != "rstrip", name != "lstrip"));
    }
    if (name == "split") {
      const Value sep = arg(a, 0, "sep");
      const Value maxsplit = arg(a, 1, "maxsplit", Value(-1));
      const std::string* sp = sep.is_none() ? nullptr : &require_string(sep, "split");
      if (sp && sp->empty()) type_error("empty separator");
      return str_list(py_split(s, sp, static_cast<long>(require_int(maxsplit, "split"))));
    }
    if (name == "splitlines") return str_list(py_splitlines(s));
    if (name == "startswith") return Value(starts_or_ends(s, arg(a, 0, "prefix"), true));
    if (name == "endswith") return Value(starts_or_ends(s, arg(a, 0, "suffix"), false));
    if (name == "upper") return Value(py_upper(s));
    if (name == "lower") return Value(py_lower(s));
    if (name == "title") return Value(py_title(s));
    if (name == "capitalize") return Value(py_capitalize(s));
    if (name == "replace") {
      const Value count = arg(a, 2, "count", Value(-1));
      return Value(py_replace(s, require_string(arg(a, 0, "old"), "replace"),
                              require_string(arg(a, 1, "new"), "replace"),
                              static_cast<long>(require_int(count, "replace"))));
    }
    if (name == "join") {
      std::string out;
      bool first = true;
      for (const auto& item : arg(a, 0, "iterable").iterate()) {
        if (!first) out += s;
        first = false;
        out += require_string(item, "str.join");
      }
      return Value(out);
    }
    if (name == "find") {
      size_t hit = s.find(require_string(arg(a, 0, "sub"), "find"));
      return Value(hit == std::string::npos ? int64_t{-1} : count_codepoints(s.substr(0, hit)));
    }
    if (name == "count") {
      const std::string sub = require_string(arg(a, 0, "sub"), "count");
      if (sub.empty()) return Value(count_codepoints(s) + 1);
      int64_t n = 0;
      for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
      return Value(n);
    }
    if (name == "format") return Value(py_format(s, a));
    std::u32string u = utf8_decode(s);
    auto all = [&](auto&& pred) { return !u.empty() && std::all_of(u.begin(), u.end(), pred); };
    if (name == "isspace") return Value(all([](char32_t c) { return py_isspace(c); }));
    if (name == "isdigit") return Value(all([](char32_t c) { return c >= '0' && c <= '9'; }));
    if (name == "isalpha") {
      return Value(all([](char32_t c) {
        auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
        return cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
      }));
    }
  }
  if (obj.is_dict() && !obj.dict_data().is_namespace && is_dict_method(name)) {
    const auto& items = obj.dict_data().items;
    if (name == "get") {
      const Value* v = obj.dict_data().find(arg(a, 0, "key"));
      return v ? *v : arg(a, 1, "default");
    }
    std::vector<Value> out;
    out.reserve(items.size());
    for (const auto& [k, v] : items) {
      if (name == "items")
        out.push_back(Value::list({k, v}, /*is_tuple=*/true));
      else
        out.push_back(name == "keys" ? k : v);
    }
    return Value::list(std::move(out));
  }
  return std::nullopt;
}

// ---- tests ----------------------------------------------------------------------------------

namespace {

bool has_cased(const std::u32string& u, bool want_lower) {
  bool any = false;
  for (char32_t c : u) {
    auto cp = static_cast<utf8proc_int32_t>(c);
    bool lower = utf8proc_toupper(cp) != cp;
    bool upper = utf8proc_tolower(cp) != cp;
    if (lower || upper) {
      any = true;
      if (want_lower ? upper : lower) return false;
    }
  }
  return any;
}

}  // namespace

bool apply_test(const std::string& name, const Value& v, const CallArgs& a) {
  using K = Value::Kind;
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict() && !v.dict_data().is_namespace;
  if (name == "iterable") {
    return v.kind() == K::kUndefined || v.is_string() || v.is_list() ||
           (v.is_dict() && !v.dict_data().is_namespace);
  }
  if (name == "sequence") {
    return v.kind() == K::kUndefined || v.is_string() || v.is_list() ||
           (v.is_dict() && !v.dict_data().is_namespace);
  }
  if (name == "callable") return v.is_function();
  if (name == "escaped") return false;
  if (name == "even" || name == "odd") {
    v.require_defined();
    if (!v.is_number()) type_error("not all arguments converted during string formatting");
    int64_t r = v.as_int() % 2;
    return name == "even" ? r == 0 : r != 0;
  }
  if (name == "divisibleby") {
    int64_t d = require_int(arg(a, 0, "num"), "divisibleby");
    if (d == 0) type_error("integer division or modulo by zero");
    return require_int(v, "divisibleby") % d == 0;
  }
  if (name == "lower" || name == "upper") {
    return has_cased(utf8_decode(v.to_str()), name == "lower");
  }
  const Value other = arg(a, 0, "other");
  if (name == "eq" || name == "equalto" || name == "==") return values_equal(v, other);
  if (name == "ne" || name == "!=") return !values_equal(v, other);
  if (name == "lt" || name == "lessthan" || name == "<") return value_less(v, other);
  if (name == "le" || name == "<=") return !value_less(other, v);
  if (name == "gt" || name == "greaterthan" || name == ">") return value_less(other, v);
  if (name == "ge" || name == ">=") return !value_less(v, other);
  if (name == "sameas") {
    if (v.is_list() && other.is_list()) return &v.list_data() == &other.list_data();
    if (v.is_dict() && other.is_dict()) return &v.dict_data() == &other.dict_data();
    return v.kind() == other.kind() && values_equal(v, other) && !v.is_list() && !v.is_dict();
  }
  if (name == "in") {
    const Value seq = arg(a, 0, "seq");
    if (seq.is_string()) return seq.str().find(require_string(v, "in")) != std::string::npos;
    if (seq.is_dict()) return seq.dict_data().find(v) != nullptr;
    for (const auto& x : seq.iterate()) {
      if (values_equal(x, v)) return true;
    }
    return false;
  }
  throw Error("no test named '" + name + "'");
}

// ---- filters --------------------------------------------------------------------------------

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

namespace {

// Attribute paths of filters: "a.b" and integer components "items.0".
Value get_path(const Value& v, const std::string& path) {
  Value cur = v;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
    cur = numeric ? get_item(cur, Value(static_cast<int64_t>(std::stoll(part))))
                  : get_item(cur, Value(part));
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

Value sort_key(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value(py_lower(v.str()));
  return v;
}

// jinja's title filter: capitalizes the start of each run between -, whitespace, ( { [ <.
std::string jinja_title(const std::string& s) {
  std::u32string u = utf8_decode(s);
  auto is_sep = [](char32_t c) {
    return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || py_isspace(c);
  };
  bool at_start = true;
  for (auto& c : u) {
    if (is_sep(c)) {
      at_start = true;
      continue;
    }
    auto cp = static_cast<utf8proc_int32_t>(c);
    c = static_cast<char32_t>(at_start ? utf8proc_toupper(cp) : utf8proc_tolower(cp));
    at_start = false;
  }
  return utf8_encode(u);
}

Value do_round(const Value& v, int64_t precision, const std::string& method) {
  v.require_defined();
  if (!v.is_number()) type_error("type " + v.type_name() + " doesn't define __round__ method");
  if (method == "common") {
    if (!v.is_float()) return Value(v.as_int());  // round(int, n) stays an int
    // printf rounds the exact binary value half-to-even, as Python's round() does.
    char buf[512];
    std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(std::max<int64_t>(precision, 0)),
                  v.as_double());
    return Value(std::strtod(buf, nullptr));
  }
  if (method != "floor" && method != "ceil") type_error("method must be common, ceil or floor");
  double scale = std::pow(10.0, static_cast<double>(precision));
  double x = v.as_double() * scale;
  return Value((method == "floor" ? std::floor(x) : std::ceil(x)) / scale);
}

Value do_tojson(const Value& v, const CallArgs& a) {
  JsonDumpOptions o;
  o.ensure_ascii = arg(a, 0, "ensure_ascii", Value(false)).truthy();
  const Value indent = arg(a, 1, "indent");
  if (indent.is_string()) {
    o.indent = indent.str();
  } else if (!indent.is_none()) {
    o.indent =
        std::string(static_cast<size_t>(std::max<int64_t>(require_int(indent, "indent"), 0)), ' ');
  }
  if (o.indent) o.item_separator = ",";
  const Value seps = arg(a, 2, "separators");
  if (!seps.is_none()) {
    if (!seps.is_list() || seps.items().size() != 2) type_error("separators must be a pair");
    o.item_separator = require_string(seps.items()[0], "separators");
    o.key_separator = require_string(seps.items()[1], "separators");
  }
  o.sort_keys = arg(a, 3, "sort_keys", Value(false)).truthy();
  return Value(dump_json(v, o));
}

Value do_indent(const Value& v, const CallArgs& a) {
  const Value width = arg(a, 0, "width", Value(4));
  std::string pad =
      width.is_string()
          ? width.str()
          : std::string(static_cast<size_t>(std::max<int64_t>(require_int(width, "indent"), 0)),
                        ' ');
  bool first = arg(a, 1, "first", Value(false)).truthy();
  bool blank = arg(a, 2, "blank", Value(false)).truthy();
  // jinja appends a newline before splitting, so a trailing newline survives as a line end.
  std::vector<std::string> lines = py_splitlines(v.to_str() + "\n");
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) {
      out += "\n";
      if (blank || !lines[i].empty()) out += pad;
    }
    out += lines[i];
  }
  if (first) out = pad + out;
  return Value(out);
}

// select / reject / selectattr / rejectattr.
Value do_select(const Value& v, const CallArgs& a, bool by_attr, bool keep_matching) {
  size_t next = 0;
  std::string attr;
  if (by_attr) attr = require_string(arg(a, next++, "attribute"), "selectattr");
  std::string test;
  CallArgs test_args;
  if (next < a.positional.size()) {
    test = require_string(a.positional[next++], "select");
    test_args.positional.assign(a.positional.begin() + static_cast<long>(next), a.positional.end());
  }
  std::vector<Value> out;
  for (const auto& item : v.iterate()) {
    Value subject = by_attr ? get_path(item, attr) : item;
    bool ok = test.empty() ? subject.truthy() : apply_test(test, subject, test_args);
    if (ok == keep_matching) out.push_back(item);
  }
  return Value::list(std::move(out));
}

Value do_map(const Value& v, const CallArgs& a) {
  std::vector<Value> out;
  if (const Value* attr = a.get(1000, "attribute")) {
    const Value* dflt = a.get(1000, "default");
    for (const auto& item : v.iterate()) {
      Value x = get_path(item, require_string(*attr, "map"));
      out.push_back(x.is_undefined() && dflt ? *dflt : x);
    }
  } else {
    if (a.positional.empty()) type_error("map requires a filter name or attribute=");
    std::string filter = require_string(a.positional[0], "map");
    CallArgs rest;
    rest.positional.assign(a.positional.begin() + 1, a.positional.end());
    rest.keyword = a.keyword;
    for (const auto& item : v.iterate()) out.push_back(apply_filter(filter, item, rest));
  }
  return Value::list(std::move(out));
}

Value do_sort(const Value& v, const CallArgs& a) {
  bool reverse = arg(a, 0, "reverse", Value(false)).truthy();
  bool case_sensitive = arg(a, 1, "case_sensitive", Value(false)).truthy();
  const Value attribute = arg(a, 2, "attribute");
  std::vector<std::pair<Value, Value>> keyed;
  for (const auto& item : v.iterate()) {
    Value k = attribute.is_none() ? item : get_path(item, require_string(attribute, "sort"));
    keyed.emplace_back(sort_key(k, case_sensitive), item);
  }
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return reverse ? value_less(y.first, x.first) : value_less(x.first, y.first);
  });
  std::vector<Value> out;
  for (auto& kv : keyed) out.push_back(std::move(kv.second));
  return Value::list(std::move(out));
}

int64_t word_count(const std::string& s) {
  int64_t n = 0;
  bool in_word = false;
  for (char32_t c : utf8_decode(s)) {
    auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
    bool word = c == '_' || (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_NO);
    if (word && !in_word) ++n;
    in_word = word;
  }
  return n;
}

Value to_int(const Value& v, const Value& dflt) {
  if (v.is_number()) return Value(v.as_int());
  if (v.is_string()) {
    std::string s = py_strip(v.str(), nullptr, true, true);
    std::string digits;
    for (char c : s) {
      if (c != '_') digits += c;
    }
    char* end = nullptr;
    long long i = std::strtoll(digits.c_str(), &end, 10);
    if (!digits.empty() && *end == '\0') return Value(static_cast<int64_t>(i));
    double d = std::strtod(digits.c_str(), &end);
    if (!digits.empty() && *end == '\0' && std::isfinite(d)) return Value(static_cast<int64_t>(d));
  }
  return dflt;
}

Value to_float(const Value& v, const Value& dflt) {
  if (v.is_number()) return Value(v.as_double());
  if (v.is_string()) {
    std::string s = py_strip(v.str(), nullptr, true, true);
    char* end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && *end == '\0') return Value(d);
  }
  return dflt;
}

}  // namespace

Value apply_filter(const std::string& name, const Value& v, const CallArgs& a) {
  if (name == "default" || name == "d") {
    bool boolean = arg(a, 1, "boolean", Value(false)).truthy();
    if (v.is_undefined() || (boolean && !v.truthy())) return arg(a, 0, "default_value", Value(""));
    return v;
  }
  if (name == "length" || name == "count") return Value(v.length());
  if (name == "string") return Value(v.to_str());
  if (name == "safe") return v.is_markup() ? v : Value::markup(v.to_str());
  if (name == "trim") {
    const Value chars = arg(a, 0, "chars");
    return Value(py_strip(v.to_str(), chars.is_none() ? nullptr : &require_string(chars, "trim"),
                          true, true));
  }
  if (name == "upper") return Value(py_upper(v.to_str()));
  if (name == "lower") return Value(py_lower(v.to_str()));
  if (name == "capitalize") return Value(py_capitalize(v.to_str()));
  if (name == "title") return Value(jinja_title(v.to_str()));
  if (name == "e" || name == "escape")
    return v.is_markup() ? v : Value::markup(html_escape(v.to_str()));
  if (name == "replace") {
    const Value count = arg(a, 2, "count");
    return Value(
        py_replace(v.to_str(), arg(a, 0, "old").to_str(), arg(a, 1, "new").to_str(),
                   count.is_none() ? -1 : static_cast<long>(require_int(count, "replace"))));
  }
  if (name == "wordcount") return Value(word_count(v.to_str()));
  if (name == "tojson") return do_tojson(v, a);
  if (name == "indent") return do_indent(v, a);
  if (name == "int") return to_int(v, arg(a, 0, "default", Value(0)));
  if (name == "float") return to_float(v, arg(a, 0, "default", Value(0.0)));
  if (name == "abs") {
    v.require_defined();
    if (v.is_float()) return Value(std::fabs(v.as_double()));
    if (v.is_number()) return Value(static_cast<int64_t>(std::llabs(v.as_int())));
    type_error("bad operand type for abs(): '" + v.type_name() + "'");
  }
  if (name == "round") {
    return do_round(v, require_int(arg(a, 0, "precision", Value(0)), "round"),
                    require_string(arg(a, 1, "method", Value("common")), "round"));
  }
  if (name == "attr") return get_attr(v, require_string(arg(a, 0, "name"), "attr"));
  if (name == "list") return Value::list(v.iterate());
  if (name == "first") {
    if (v.is_list()) {
      if (!v.items().empty()) return v.items().front();
    } else {
      auto items = v.iterate();
      if (!items.empty()) return items.front();
    }
    return Value::undefined("No first item, sequence was empty.");
  }
  if (name == "last") {
    v.require_defined();
    auto items = v.is_list() ? v.items() : v.iterate();
    if (!items.empty()) return items.back();
    return Value::undefined("No last item, sequence was empty.");
  }
  if (name == "reverse") {
    if (v.is_string()) {
      std::u32string u = utf8_decode(v.str());
      std::reverse(u.begin(), u.end());
      return Value(utf8_encode(u));
    }
    auto items = v.iterate();
    std::reverse(items.begin(), items.end());
    return Value::list(std::move(items));
  }
  if (name == "join") {
    const Value sep = arg(a, 0, "d", Value(""));
    const Value attribute = arg(a, 1, "attribute");
    std::string out;
    bool first = true;
    for (const auto& item : v.iterate()) {
      if (!first) out += sep.to_str();
      first = false;
      out += (attribute.is_none() ? item : get_path(item, attribute.to_str())).to_str();
    }
    return Value(out);
  }
  if (name == "items") {
    if (v.is_undefined()) return Value::list({});
    if (!v.is_dict()) type_error("Can only get item pairs from a mapping.");
    return *call_method(v, "items", {});
  }
  if (name == "dictsort") {
    if (!v.is_dict()) type_error("dictsort expects a mapping");
    bool case_sensitive = arg(a, 0, "case_sensitive", Value(false)).truthy();
    bool by_value = require_string(arg(a, 1, "by", Value("key")), "dictsort") == "value";
    bool reverse = arg(a, 2, "reverse", Value(false)).truthy();
    auto items = call_method(v, "items", {})->items();
    std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
      const Value& kx = x.items()[by_value ? 1 : 0];
      const Value& ky = y.items()[by_value ? 1 : 0];
      return reverse ? value_less(sort_key(ky, case_sensitive), sort_key(kx, case_sensitive))
                     : value_less(sort_key(kx, case_sensitive), sort_key(ky, case_sensitive));
    });
    return Value::list(std::move(items));
  }
  if (name == "unique") {
    bool case_sensitive = arg(a, 0, "case_sensitive", Value(false)).truthy();
    const Value attribute = arg(a, 1, "attribute");
    std::vector<Value> out, seen;
    for (const auto& item : v.iterate()) {
      Value k =
          sort_key(attribute.is_none() ? item : get_path(item, attribute.to_str()), case_sensitive);
      bool dup =
          std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return values_equal(s, k); });
      if (!dup) {
        seen.push_back(k);
        out.push_back(item);
      }
    }
    return Value::list(std::move(out));
  }
  if (name == "sort") return do_sort(v, a);
  if (name == "map") return do_map(v, a);
  if (name == "select") return do_select(v, a, false, true);
  if (name == "reject") return do_select(v, a, false, false);
  if (name == "selectattr") return do_select(v, a, true, true);
  if (name == "rejectattr") return do_select(v, a, true, false);
  if (name == "sum") {
    const Value attribute = arg(a, 0, "attribute");
    Value total = arg(a, 1, "start", Value(0));
    for (const auto& item : v.iterate()) {
      Value x = attribute.is_none() ? item : get_path(item, attribute.to_str());
      if (!x.is_number() || !total.is_number()) type_error("sum() expects numbers");
      total = (x.is_float() || total.is_float()) ? Value(total.as_double() + x.as_double())
                                                 : Value(total.as_int() + x.as_int());
    }
    return total;
  }
  if (name == "min" || name == "max") {
    bool case_sensitive = arg(a, 0, "case_sensitive", Value(false)).truthy();
    const Value attribute = arg(a, 1, "attribute");
    const Value* best = nullptr;
    Value best_key;
    auto items = v.iterate();
    for (const auto& item : items) {
      Value k =
          sort_key(attribute.is_none() ? item : get_path(item, attribute.to_str()), case_sensitive);
      if (!best || (name == "min" ? value_less(k, best_key) : value_less(best_key, k))) {
        best = &item;
        best_key = k;
      }
    }
    if (!best) return Value::undefined("No aggregated item, sequence was empty.");
    return *best;
  }
  throw Error("no filter named '" + name + "'");
}

// ---- globals --------------------------------------------------------------------------------

Value make_global_function(const std::string& name) {
  if (name == "range") {
    return Value::function([](const CallArgs& a) {
      int64_t start = 0, stop = 0, step = 1;
      if (a.positional.size() == 1) {
        stop = require_int(a.positional[0], "range");
      } else if (a.positional.size() >= 2) {
        start = require_int(a.positional[0], "range");
        stop = require_int(a.positional[1], "range");
        if (a.positional.size() > 2) step = require_int(a.positional[2], "range");
      } else {
        type_error("range expected at least 1 argument, got 0");
      }
      if (step == 0) type_error("range() arg 3 must not be zero");
      std::vector<Value> out;
      for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
        out.emplace_back(i);
        if (out.size() > 100000) type_error("range too big");  // the sandbox's MAX_RANGE
      }
      return Value::list(std::move(out));
    });
  }
  if (name == "namespace" || name == "dict") {
    const bool ns = name == "namespace";
    return Value::function([ns](const CallArgs& a) {
      std::vector<std::pair<Value, Value>> items;
      for (const auto& p : a.positional) {
        if (!p.is_dict()) type_error("namespace()/dict() positional argument must be a mapping");
        items.insert(items.end(), p.dict_data().items.begin(), p.dict_data().items.end());
      }
      Value d = Value::dict(std::move(items), ns);
      for (const auto& [k, v] : a.keyword) d.dict_data().set(Value(k), v);
      return d;
    });
  }
  if (name == "raise_exception") {
    return Value::function([](const CallArgs& a) -> Value {
      throw TemplateRaised(a.positional.empty() ? "" : a.positional[0].to_str());
    });
  }
  if (name == "strftime_now") {
    return Value::function([](const CallArgs& a) {
      std::string fmt = require_string(arg(a, 0, "format"), "strftime_now");
      std::time_t now = std::time(nullptr);
      std::tm tm{};
      localtime_r(&now, &tm);
      char buf[512];
      size_t n = std::strftime(buf, sizeof(buf), fmt.c_str(), &tm);
      return Value(std::string(buf, n));
    });
  }
  return Value::undefined("'" + name + "' is undefined");
}

}  // namespace tessera::jinja
