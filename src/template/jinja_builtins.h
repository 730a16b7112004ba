// jinja2's built-in filters, tests and global functions, Python's str/dict methods, and the
// environment's attribute/item lookup rules (sandboxed, as transformers renders templates).
#pragma once

#include <optional>
#include <string>

#include "core/error.h"
#include "template/jinja_value.h"

namespace tessera::jinja {

// Raised by the template's own raise_exception(msg); what() is exactly `msg`.
class TemplateRaised : public Error {
 public:
  explicit TemplateRaised(const std::string& msg) : Error(msg) {}
};

// environment.getattr(obj, name): methods first, then items; missing -> undefined.
// Throws for an undefined `obj`.
Value get_attr(const Value& obj, const std::string& name);
// environment.getitem(obj, key): items first, then attributes; missing -> undefined.
Value get_item(const Value& obj, const Value& key);
// obj[start:stop:step] on lists, tuples and strings (null pointers = omitted).
Value get_slice(const Value& obj, const Value* start, const Value* stop, const Value* step);

// obj.name(args) when `obj` has a method `name`; nullopt otherwise.
std::optional<Value> call_method(const Value& obj, const std::string& name, const CallArgs& args);

// `input | name(args)`. Throws for unknown filters.
Value apply_filter(const std::string& name, const Value& input, const CallArgs& args);
// `v is name(args)`. Throws for unknown tests.
bool apply_test(const std::string& name, const Value& v, const CallArgs& args);

// markupsafe.escape: & < > " ' as HTML entities.
std::string html_escape(const std::string& s);

// Global functions: range, namespace, dict, raise_exception, strftime_now.
Value make_global_function(const std::string& name);

}  // namespace tessera::jinja
