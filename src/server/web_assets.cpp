#include "server/web_assets.h"

namespace tessera {

namespace {

constexpr std::string_view kCsp =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'";

// If-None-Match holds "*" or a comma-separated list of ETags, possibly weak (W/"...").
bool etag_matches(std::string_view header, std::string_view etag) {
  while (!header.empty()) {
    const size_t comma = header.find(',');
    std::string_view tag = header.substr(0, comma);
    while (!tag.empty() && (tag.front() == ' ' || tag.front() == '\t')) tag.remove_prefix(1);
    while (!tag.empty() && (tag.back() == ' ' || tag.back() == '\t')) tag.remove_suffix(1);
    if (tag.starts_with("W/")) tag.remove_prefix(2);
    if (tag == "*" || tag == etag) return true;
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

const WebAsset* find_web_asset(std::string_view path) {
  if (path == "/") path = "/webui/index.html";
  for (const WebAsset& a : web_assets())
    if (a.path == path) return &a;
  return nullptr;
}

WebResponse web_response(std::string_view path, std::string_view if_none_match) {
  WebResponse r;
  const WebAsset* a = find_web_asset(path);
  if (a == nullptr) return r;
  r.headers = {{"Content-Type", a->content_type},
               {"Cache-Control", "no-cache"},
               {"ETag", a->etag},
               {"Content-Security-Policy", kCsp},
               {"X-Content-Type-Options", "nosniff"},
               {"Referrer-Policy", "no-referrer"},
               {"X-Frame-Options", "DENY"}};
  if (!if_none_match.empty() && etag_matches(if_none_match, a->etag)) {
    r.status = 304;
    return r;
  }
  r.status = 200;
  r.body = a->body;
  return r;
}

}  // namespace tessera
