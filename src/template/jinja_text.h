// Text helpers with Python str semantics over UTF-8: Python strings index, slice, strip and
// case-map by code point, and treat more than ASCII as whitespace.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tessera::jinja {

// Invalid UTF-8 bytes decode to U+FFFD so that indexing never fails.
std::u32string utf8_decode(std::string_view s);
std::string utf8_encode(std::u32string_view s);

// str.isspace() for one code point.
bool py_isspace(char32_t c);
// Line boundaries of str.splitlines().
bool py_is_linebreak(char32_t c);

// str.strip/lstrip/rstrip; `chars` null means whitespace.
std::string py_strip(std::string_view s, const std::string* chars, bool left, bool right);
// str.split(sep, maxsplit); `sep` null means runs of whitespace.
std::vector<std::string> py_split(std::string_view s, const std::string* sep, long maxsplit);
std::vector<std::string> py_splitlines(std::string_view s);
std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
std::string py_capitalize(std::string_view s);
std::string py_title(std::string_view s);  // str.title()
std::string py_replace(std::string_view s, std::string_view from, std::string_view to, long count);

}  // namespace tessera::jinja
