// Runtime values of the Jinja interpreter, with Python's semantics where templates can observe
// them: truthiness, equality/ordering, str() / repr() formatting, JSON dumping as json.dumps does.
//
// Lists and dicts are held by shared_ptr: copying a Value aliases the container, as Python
// references do. Only namespace() objects are ever mutated after construction (the template
// environment is immutable), so the aliasing is observable exactly where jinja2 makes it so.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"

namespace tessera::jinja {

class Value;

// Arguments of a call: positional then keyword, in source order.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;

  // Python-style binding: the i-th positional argument, else the keyword `name`, else nullptr.
  const Value* get(size_t i, std::string_view name) const;
};

using Function = std::function<Value(const CallArgs&)>;

struct ListData {
  std::vector<Value> items;
  bool is_tuple = false;  // prints as (a, b) and never equals a list
};

// Insertion-ordered mapping (Python dicts keep insertion order; so must tojson output).
struct DictData {
  std::vector<std::pair<Value, Value>> items;
  bool is_namespace = false;  // the only kind of object `{% set x.attr = ... %}` may assign to

  const Value* find_key(std::string_view key) const;
  const Value* find(const Value& key) const;
  void set(Value key, Value value);
};

class Value {
 public:
  enum class Kind : uint8_t {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,
    kDict,
    kFunction
  };

  // Undefined. `hint` is the message of the error raised when the value is misused, e.g.
  // "'x' is undefined" or "'dict object' has no attribute 'y'".
  Value() = default;
  static Value undefined(std::string hint);
  static Value none();
  Value(bool b) : kind_(Kind::kBool), int_(b) {}
  Value(int v) : kind_(Kind::kInt), int_(v) {}
  Value(int64_t v) : kind_(Kind::kInt), int_(v) {}
  Value(double v) : kind_(Kind::kFloat), float_(v) {}
  Value(std::string s) : kind_(Kind::kString), str_(std::move(s)) {}
  Value(const char* s) : kind_(Kind::kString), str_(s) {}
  // markupsafe.Markup (what `|safe` and `|escape` return): a string that escapes the plain
  // strings `+` joins to it.
  static Value markup(std::string s);
  static Value list(std::vector<Value> items, bool is_tuple = false);
  static Value dict(std::vector<std::pair<Value, Value>> items = {}, bool is_namespace = false);
  static Value function(Function fn);

  template <class Json>
  // Throws Error for values nested deeper than kMaxFromJsonDepth (the conversion recurses).
  static Value from_json(const Json& j, int depth = 0);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_number() const {
    return kind_ == Kind::kBool || kind_ == Kind::kInt || kind_ == Kind::kFloat;
  }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_markup() const { return markup_; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_function() const { return kind_ == Kind::kFunction; }

  bool as_bool() const { return int_ != 0; }
  int64_t as_int() const;                          // bool/int; float truncates
  double as_double() const;                        // bool/int/float
  const std::string& str() const { return str_; }  // string contents, or the undefined hint
  const std::vector<Value>& items() const { return list_->items; }
  const ListData& list_data() const { return *list_; }
  DictData& dict_data() const { return *dict_; }
  const Function& fn() const { return *fn_; }

  // Python's type name, as used in error messages ("str", "int", "NoneType", ...).
  std::string type_name() const;

  // Throws tessera::Error with the undefined hint when this value is undefined.
  void require_defined() const;

  bool truthy() const;
  std::string to_str() const;  // Python str(); undefined prints as ""
  std::string repr() const;    // Python repr()

  // Elements a `for` loop visits: list items, dict keys, string characters, nothing for
  // undefined. Throws for non-iterables.
  std::vector<Value> iterate() const;
  // len(); undefined has length 0. Throws for values without a length.
  int64_t length() const;

 private:
  Kind kind_ = Kind::kUndefined;
  bool markup_ = false;
  int64_t int_ = 0;
  double float_ = 0;
  std::string str_;
  std::shared_ptr<ListData> list_;
  std::shared_ptr<DictData> dict_;
  std::shared_ptr<Function> fn_;
};

// Python `a == b` (never throws; 1 == 1.0 == True; tuples never equal lists).
bool values_equal(const Value& a, const Value& b);
// Python `a < b` for numbers, strings and sequences; throws tessera::Error otherwise.
bool value_less(const Value& a, const Value& b);

// Python float.__repr__: shortest round-trip digits, "1.0", "1e+16", "1e-05".
std::string format_float(double d);

// json.dumps(v, ensure_ascii=, indent=, separators=, sort_keys=). `indent` is the
// per-level indent string, or nullopt for single-line output. ensure_ascii writes every
// non-ASCII character as \uXXXX (UTF-16 surrogate pairs above U+FFFF), as Python does.
struct JsonDumpOptions {
  std::optional<std::string> indent;
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
  bool ensure_ascii = false;
};
std::string dump_json(const Value& v, const JsonDumpOptions& opts);

// Deeper JSON than any template needs; bounds the recursion of from_json (request bodies
// are limited to 256 levels before they get here).
constexpr int kMaxFromJsonDepth = 512;

template <class Json>
Value Value::from_json(const Json& j, int depth) {
  if (depth > kMaxFromJsonDepth)
    throw Error("a template value nests deeper than " + std::to_string(kMaxFromJsonDepth) +
                " levels");
  switch (j.type()) {
    case Json::value_t::null:
      return none();
    case Json::value_t::boolean:
      return Value(j.template get<bool>());
    case Json::value_t::number_integer:
      return Value(j.template get<int64_t>());
    case Json::value_t::number_unsigned:
      return Value(static_cast<int64_t>(j.template get<uint64_t>()));
    case Json::value_t::number_float:
      return Value(j.template get<double>());
    case Json::value_t::string:
      return Value(j.template get<std::string>());
    case Json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json(e, depth + 1));
      return list(std::move(items));
    }
    case Json::value_t::object: {
      std::vector<std::pair<Value, Value>> items;
      items.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it) {
        items.emplace_back(Value(it.key()), from_json(it.value(), depth + 1));
      }
      return dict(std::move(items));
    }
    default:
      return none();
  }
}

}  // namespace tessera::jinja
