// What a route handler sees of HTTP: a fully read request (method, path, headers, body) and
// a response it fills in, either whole (status, headers, body) or streamed through a
// content provider that writes chunks to a DataSink. The front end (http_listener.h) reads
// and frames the bytes; handlers run on worker threads and may block (they wait for the
// engine), so they never run on the event loop.
#pragma once
#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace tessera {

// Header names compare case-insensitively (RFC 9110 5.1).
struct HeaderNameLess {
  bool operator()(const std::string& a, const std::string& b) const;
};
using HttpHeaders = std::multimap<std::string, std::string, HeaderNameLess>;

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // the target without its query string
  std::string query;   // after '?', undecoded ("" when none)
  HttpHeaders headers;
  std::string body;  // decoded (de-chunked) body, at most the server's body limit
  // True once the client has closed its connection (a non-streamed handler polls this to
  // abort work nobody will read). Never null while a handler runs.
  std::function<bool()> client_gone = [] { return false; };

  // The first value of header `name`, or "" when absent.
  std::string get_header_value(const std::string& name) const;
  bool has_header(const std::string& name) const { return headers.count(name) > 0; }
};

// Where a streamed response writes its body. write() blocks until the bytes are handed to
// the socket (or the write deadline passes); false: the client is gone, stop writing.
class DataSink {
 public:
  std::function<bool(const char* data, size_t n)> write;
  std::function<bool()> is_writable;  // false once the client has gone away
  void done() { done_ = true; }
  bool is_done() const { return done_; }

 private:
  bool done_ = false;
};

struct HttpResponse {
  int status = 200;
  HttpHeaders headers;  // besides Content-Type / Content-Length, which the front end writes
  std::string body;
  std::string content_type;
  // Set for a streamed (chunked) body: called once with the sink; returns false when the
  // client went away. The front end ends the chunked body after it returns.
  std::function<bool(size_t offset, DataSink& sink)> content_provider;

  void set_header(const std::string& name, const std::string& value) {
    headers.emplace(name, value);
  }
  void set_content(std::string text, const std::string& type) {
    body = std::move(text);
    content_type = type;
  }
  void set_content(const char* data, size_t n, const std::string& type) {
    set_content(std::string(data, n), type);
  }
  void set_chunked_content_provider(const std::string& type,
                                    std::function<bool(size_t, DataSink&)> provider) {
    content_type = type;
    content_provider = std::move(provider);
  }
};

using HttpHandler = std::function<void(const HttpRequest&, HttpResponse&)>;

// Exact-path routes by method, plus pattern routes tried in order (the chat page's assets).
class HttpRouter {
 public:
  void Get(const std::string& path, HttpHandler h) { exact_[{"GET", path}] = std::move(h); }
  void Post(const std::string& path, HttpHandler h) { exact_[{"POST", path}] = std::move(h); }
  // A route for every path `match` accepts (GET only).
  void GetMatching(std::function<bool(const std::string&)> match, HttpHandler h) {
    patterns_.emplace_back(std::move(match), std::move(h));
  }
  // The handler for method + path, or nullptr.
  const HttpHandler* find(const std::string& method, const std::string& path) const;

 private:
  std::map<std::pair<std::string, std::string>, HttpHandler> exact_;
  std::vector<std::pair<std::function<bool(const std::string&)>, HttpHandler>> patterns_;
};

}  // namespace tessera
