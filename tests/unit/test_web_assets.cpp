#include <gtest/gtest.h>

#include <string>

#include "server/web_assets.h"

namespace tessera {
namespace {

std::string header(const WebResponse& r, std::string_view name) {
  for (const auto& [k, v] : r.headers)
    if (k == name) return std::string(v);
  return {};
}

TEST(WebAssets, EveryFileIsEmbeddedWithTypeAndEtag) {
  ASSERT_GE(web_assets().size(), 4u);
  for (const WebAsset& a : web_assets()) {
    EXPECT_TRUE(a.path.starts_with("/webui/")) << a.path;
    EXPECT_FALSE(a.body.empty()) << a.path;
    EXPECT_FALSE(a.content_type.empty()) << a.path;
    ASSERT_EQ(a.etag.size(), 18u) << a.path;  // "<16 hex digits>"
    EXPECT_EQ(a.etag.front(), '"');
    EXPECT_EQ(a.etag.back(), '"');
  }
  const WebAsset* index = find_web_asset("/");
  ASSERT_NE(index, nullptr);
  EXPECT_EQ(index, find_web_asset("/webui/index.html"));
  EXPECT_EQ(index->content_type, "text/html; charset=utf-8");
  EXPECT_TRUE(index->body.starts_with("<!doctype html>"));
  EXPECT_EQ(find_web_asset("/webui/app.js")->content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(find_web_asset("/webui/app.css")->content_type, "text/css; charset=utf-8");
  EXPECT_EQ(find_web_asset("/webui/"), nullptr);
  EXPECT_EQ(find_web_asset("/index.html"), nullptr);
  EXPECT_EQ(find_web_asset("/webui/../webui/app.js"), nullptr);
}

TEST(WebAssets, ResponsesCarryCachingAndSecurityHeaders) {
  const WebResponse r = web_response("/", "");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body, find_web_asset("/")->body);
  EXPECT_EQ(header(r, "Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(header(r, "Cache-Control"), "no-cache");
  EXPECT_EQ(header(r, "X-Content-Type-Options"), "nosniff");
  const std::string etag = header(r, "ETag");
  EXPECT_EQ(etag, find_web_asset("/")->etag);
  const std::string csp = header(r, "Content-Security-Policy");
  EXPECT_NE(csp.find("default-src 'self'"), std::string::npos);
  EXPECT_NE(csp.find("connect-src 'self'"), std::string::npos);
  EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos);
  EXPECT_EQ(csp.find("http"), std::string::npos);

  // If-None-Match: the ETag (alone, weak, in a list, or *) gives 304 with no body.
  for (const std::string& inm :
       {etag, "W/" + etag, "\"x\", " + etag, "\"x\"," + etag + " ,\"y\"", std::string("*")}) {
    const WebResponse c = web_response("/", inm);
    EXPECT_EQ(c.status, 304) << inm;
    EXPECT_TRUE(c.body.empty());
    EXPECT_EQ(header(c, "ETag"), etag);
  }
  for (const std::string& inm : {std::string("\"x\""), etag.substr(1), std::string(",,")})
    EXPECT_EQ(web_response("/", inm).status, 200) << inm;

  const WebResponse missing = web_response("/webui/none.js", "");
  EXPECT_EQ(missing.status, 404);
  EXPECT_TRUE(missing.headers.empty());
}

}  // namespace
}  // namespace tessera
