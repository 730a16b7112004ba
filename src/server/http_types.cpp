#include "server/http_types.h"

#include <algorithm>
#include <cctype>

namespace tessera {

bool HeaderNameLess::operator()(const std::string& a, const std::string& b) const {
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) <
           std::tolower(static_cast<unsigned char>(y));
  });
}

std::string HttpRequest::get_header_value(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

const HttpHandler* HttpRouter::find(const std::string& method, const std::string& path) const {
  auto it = exact_.find({method, path});
  if (it != exact_.end()) return &it->second;
  if (method == "GET")
    for (const auto& [match, handler] : patterns_)
      if (match(path)) return &handler;
  return nullptr;
}

}  // namespace tessera
