#include "server/http_guard.h"

#include <cctype>

namespace tessera {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

bool is_decimal(std::string_view s) {
  if (s.empty() || s.size() > 19) return false;  // 19 digits: fits in int64
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace

std::string framing_error(const FramingFields& f) {
  if (!f.content_length.empty() && !f.transfer_encoding.empty())
    return "Content-Length and Transfer-Encoding together are ambiguous";
  if (f.transfer_encoding.size() > 1) return "more than one Transfer-Encoding header";
  if (f.transfer_encoding.size() == 1 && !iequals(trim(f.transfer_encoding[0]), "chunked"))
    return "unsupported Transfer-Encoding '" + f.transfer_encoding[0] + "' (only 'chunked')";
  std::string_view first;
  for (const std::string& v : f.content_length) {
    const std::string_view t = trim(v);
    if (!is_decimal(t)) return "invalid Content-Length '" + v + "'";
    if (first.empty())
      first = t;
    else if (t != first)
      return "conflicting Content-Length headers";
  }
  return "";
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Every byte of `a` is visited whatever the contents; a length mismatch is folded in.
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i]) ^
            static_cast<unsigned char>(b.empty() ? 0 : b[i % b.size()]);
  return diff == 0;
}

bool bearer_matches(std::string_view authorization, std::string_view api_key) {
  constexpr std::string_view kPrefix = "Bearer ";
  if (authorization.size() < kPrefix.size() ||
      !iequals(authorization.substr(0, kPrefix.size()), kPrefix))
    return false;
  return constant_time_equal(trim(authorization.substr(kPrefix.size())), api_key);
}

}  // namespace tessera
