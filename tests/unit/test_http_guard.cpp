// The HTTP front end's checks on a request head (framing, API key) and the request parser's
// bounds on hostile JSON (nesting depth, numbers out of range).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "server/api_error.h"
#include "server/http_guard.h"
#include "server/openai_request.h"
#include "template/jinja_value.h"

namespace tessera {

TEST(HttpGuard, AcceptsUnambiguousFraming) {
  EXPECT_EQ(framing_error({}), "");
  EXPECT_EQ(framing_error({{"12"}, {}}), "");
  EXPECT_EQ(framing_error({{"12", " 12 "}, {}}), "");  // identical duplicates
  EXPECT_EQ(framing_error({{}, {"chunked"}}), "");
  EXPECT_EQ(framing_error({{}, {"Chunked"}}), "");
}

TEST(HttpGuard, RejectsAmbiguousFraming) {
  EXPECT_NE(framing_error({{"5"}, {"chunked"}}), "");            // CL + TE
  EXPECT_NE(framing_error({{"2", "20"}, {}}), "");               // differing CL
  EXPECT_NE(framing_error({{"-5"}, {}}), "");                    // negative
  EXPECT_NE(framing_error({{"12abc"}, {}}), "");                 // garbage
  EXPECT_NE(framing_error({{""}, {}}), "");                      // empty
  EXPECT_NE(framing_error({{"99999999999999999999"}, {}}), "");  // overflows int64
  EXPECT_NE(framing_error({{}, {"xchunked"}}), "");
  EXPECT_NE(framing_error({{}, {"gzip, chunked"}}), "");
  EXPECT_NE(framing_error({{}, {"chunked", "chunked"}}), "");
  EXPECT_NE(framing_error({{}, {"identity"}}), "");
}

TEST(HttpGuard, ConstantTimeEqual) {
  EXPECT_TRUE(constant_time_equal("sekrit", "sekrit"));
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_FALSE(constant_time_equal("sekrit", "sekriT"));
  EXPECT_FALSE(constant_time_equal("sekrit", "sekrit2"));
  EXPECT_FALSE(constant_time_equal("sekrit2", "sekrit"));
  EXPECT_FALSE(constant_time_equal("", "x"));
  EXPECT_FALSE(constant_time_equal("x", ""));
  EXPECT_FALSE(constant_time_equal("Xekrit", "sekrit"));
}

TEST(HttpGuard, BearerMatches) {
  EXPECT_TRUE(bearer_matches("Bearer sekrit", "sekrit"));
  EXPECT_TRUE(bearer_matches("bearer sekrit", "sekrit"));  // the scheme is case-insensitive
  EXPECT_FALSE(bearer_matches("Bearer sekrit2", "sekrit"));
  EXPECT_FALSE(bearer_matches("Bearer ", "sekrit"));
  EXPECT_FALSE(bearer_matches("sekrit", "sekrit"));
  EXPECT_FALSE(bearer_matches("Basic sekrit", "sekrit"));
  EXPECT_FALSE(bearer_matches("", "sekrit"));
}

TEST(HostileJson, DepthLimitAndOverflowAre400) {
  const std::string deep = std::string(20000, '[') + std::string(20000, ']');
  try {
    parse_request_body(deep);
    FAIL() << "no error";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_NE(std::string(e.what()).find("256"), std::string::npos) << e.what();
  }
  for (const char* body : {R"({"temperature": 1e400})", R"({"logit_bias": {"5": -1e400}})"}) {
    try {
      parse_request_body(body);
      FAIL() << "no error for " << body;
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400) << body;
    }
  }
  EXPECT_NO_THROW(parse_request_body(std::string(200, '[') + std::string(200, ']')));
}

TEST(HostileJson, TemplateValueDepthIsBounded) {
  // Deeper than any request body may be, built without the parser (e.g. a value a
  // template receives from another path): from_json throws instead of exhausting the stack.
  nlohmann::json deep = nlohmann::json::array();
  for (int i = 0; i < 100000; ++i) deep = nlohmann::json::array({std::move(deep)});
  EXPECT_THROW(jinja::Value::from_json(deep), Error);
  nlohmann::json ok = nlohmann::json::array();
  for (int i = 0; i < 300; ++i) ok = nlohmann::json::array({std::move(ok)});
  EXPECT_NO_THROW(jinja::Value::from_json(ok));
}

}  // namespace tessera
