// Checks on a request's head that the HTTP front end makes before it reads the body: message
// framing (request smuggling behind a proxy) and the API key. Pure functions, unit-tested
// without sockets (tests/unit/test_http_guard.cpp).
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace tessera {

// The framing headers of a request head, as received (one entry per field line).
struct FramingFields {
  std::vector<std::string> content_length;     // every Content-Length value
  std::vector<std::string> transfer_encoding;  // every Transfer-Encoding value
};

// "" when the framing is unambiguous, else why it is not (the server answers 400):
// Content-Length together with Transfer-Encoding, Content-Length values that differ or are
// not a non-negative decimal, a Transfer-Encoding other than exactly "chunked".
std::string framing_error(const FramingFields& f);

// a == b in time that depends only on the lengths, not on where they first differ (an
// attacker timing 401s learns nothing about a key's prefix).
bool constant_time_equal(std::string_view a, std::string_view b);

// Whether an Authorization header value carries `api_key` as a bearer token (constant time).
bool bearer_matches(std::string_view authorization, std::string_view api_key);

}  // namespace tessera
