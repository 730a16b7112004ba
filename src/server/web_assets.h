// The web chat page that `tessera serve` shows at "/": HTML, CSS and JavaScript from
// src/server/webui/, compiled into the binary at build time (cmake/embed_webui.cmake), so
// the page needs nothing from anywhere but this server. Independent of the HTTP library:
// a front end asks web_response() what to answer for a GET / HEAD and sends it as it is.
//
// URLs: "/" is the page (index.html, also at /webui/index.html); its files are under
// /webui/. Every answer carries
//   Content-Type              from the file's extension
//   Cache-Control: no-cache   a browser may keep the file but revalidates it each time:
//   ETag                      "<16 hex digits of its SHA-256>"; a request whose
//                             If-None-Match names it gets 304 and no body
//   Content-Security-Policy   only this origin: scripts and styles from files (no inline
//                             script), fetches to this server, no frames, forms or plugins
//   X-Content-Type-Options: nosniff, Referrer-Policy: no-referrer, X-Frame-Options: DENY
#pragma once
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace tessera {

struct WebAsset {
  std::string_view path;          // "/webui/app.js"
  std::string_view content_type;  // "text/javascript; charset=utf-8"
  std::string_view body;
  std::string_view etag;  // with its quotes, as sent: "\"0123456789abcdef\""
};

// Every embedded file (generated).
std::span<const WebAsset> web_assets();

// The file served at `path` ("/" is index.html), or null.
const WebAsset* find_web_asset(std::string_view path);

struct WebResponse {
  int status = 404;  // 200, 304, or 404 (no such file: the front end's own 404 answer)
  std::string_view body;
  // Every header to send, Content-Type included (none for a 404).
  std::vector<std::pair<std::string_view, std::string_view>> headers;
};

// The answer to GET (or HEAD) `path` with the request's If-None-Match header ("" when
// absent): 200 with the file, 304 when the ETag matches, 404 when no file is there.
WebResponse web_response(std::string_view path, std::string_view if_none_match);

}  // namespace tessera
