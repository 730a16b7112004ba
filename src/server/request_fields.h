// Typed reads of request-body fields for the request parsers: a wrong type or range throws
// ApiError(400) naming the field. Bodies are ordered_json so that objects keep the
// client's key order (tool schemas and call arguments reach templates through tojson).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "server/api_error.h"

namespace tessera::request_fields {

using json = nlohmann::ordered_json;

// A present, non-null field (OpenAI clients send null for "use the default").
inline const json* field(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

[[noreturn]] inline void bad(const std::string& param, const std::string& msg) {
  throw ApiError::bad_param(param, msg);
}

// `param` is the field's full path for messages ("response_format.json_schema.strict").
inline bool get_bool(const json& body, const char* name, bool def, const std::string& param) {
  const json* v = field(body, name);
  if (!v) return def;
  if (!v->is_boolean()) bad(param, "'" + param + "' must be a boolean");
  return v->get<bool>();
}
inline bool get_bool(const json& body, const char* name, bool def) {
  return get_bool(body, name, def, name);
}

// A string field; nullptr when absent or null.
inline const std::string* get_string(const json& body, const char* name, const std::string& param) {
  const json* v = field(body, name);
  if (!v) return nullptr;
  if (!v->is_string()) bad(param, "'" + param + "' must be a string");
  return v->get_ptr<const std::string*>();
}

}  // namespace tessera::request_fields
