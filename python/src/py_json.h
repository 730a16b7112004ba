// Python values -> JSON, so that Python arguments reach the same validators as HTTP
// request bodies (and their errors name the same fields). Dicts keep their key order, as
// request bodies do (tool schemas reach chat templates in the caller's order).
#pragma once
#include <nanobind/nanobind.h>

#include <nlohmann/json.hpp>
#include <string>

namespace tessera::python {

// None, bool, int, float, str, list/tuple and dict (str keys) convert; so do objects with
// __index__ (numpy integers) and __float__ (numpy floats). Anything else, an int beyond
// 64 bits or nesting deeper than 64 levels throws Error naming `where` (e.g.
// "messages[2].content").
nlohmann::ordered_json to_json(nanobind::handle h, const std::string& where);

}  // namespace tessera::python
