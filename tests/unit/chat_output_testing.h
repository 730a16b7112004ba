// Helpers for the output-parser tests: run a parser over a text cut in every possible way
// and check that the message it gives never depends on the cut.
#pragma once
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "server/chat_output.h"
#include "server/message_delta.h"

namespace tessera::testing_util {

// Deterministic call ids: id0, id1, ...
inline std::function<std::string()> counting_ids() {
  auto n = std::make_shared<int>(0);
  return [n] { return "id" + std::to_string((*n)++); };
}

// Checks the OpenAI streaming order of `deltas`: each call's start (with id and name)
// before its arguments, calls started in index order, arguments only for started calls.
inline void expect_stream_order(const std::vector<MessageDelta>& deltas, const std::string& label) {
  int started = 0;
  for (const MessageDelta& d : deltas) {
    if (d.kind == MessageDelta::Kind::TOOL_CALL_BEGIN) {
      EXPECT_EQ(d.index, started) << label;
      EXPECT_FALSE(d.id.empty()) << label;
      EXPECT_FALSE(d.name.empty()) << label;
      ++started;
    } else if (d.kind == MessageDelta::Kind::TOOL_CALL_ARGS) {
      EXPECT_GE(d.index, 0) << label;
      EXPECT_LT(d.index, started) << label;
      EXPECT_FALSE(d.text.empty()) << label;
    } else {
      EXPECT_FALSE(d.text.empty()) << label;
    }
  }
}

inline ParsedMessage run_pieces(const ChatOutputOptions& o,
                                const std::vector<std::string_view>& pieces,
                                const std::string& label) {
  ChatOutputParser p(o, counting_ids());
  std::vector<MessageDelta> deltas;
  for (std::string_view s : pieces) p.feed(s, deltas);
  p.finish(deltas);
  expect_stream_order(deltas, label);
  ParsedMessage m;
  for (const MessageDelta& d : deltas) m.apply(d);
  EXPECT_EQ(p.n_tool_calls(), static_cast<int>(m.tool_calls.size())) << label;
  return m;
}

inline void expect_same(const ParsedMessage& a, const ParsedMessage& b, const std::string& label) {
  EXPECT_EQ(a.reasoning, b.reasoning) << label;
  EXPECT_EQ(a.content, b.content) << label;
  ASSERT_EQ(a.tool_calls.size(), b.tool_calls.size()) << label;
  for (size_t i = 0; i < a.tool_calls.size(); ++i) {
    EXPECT_EQ(a.tool_calls[i].id, b.tool_calls[i].id) << label;
    EXPECT_EQ(a.tool_calls[i].name, b.tool_calls[i].name) << label;
    EXPECT_EQ(a.tool_calls[i].arguments, b.tool_calls[i].arguments) << label;
  }
}

// The whole text at once, then: cut at every split point into two deltas, and fed one
// byte at a time. Every way gives the same message, which is returned.
inline ParsedMessage parse_every_way(const ChatOutputOptions& o, std::string_view text) {
  const ParsedMessage whole = run_pieces(o, {text}, "whole");
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    const std::string label = "cut at " + std::to_string(cut) + " of: " + std::string(text);
    expect_same(run_pieces(o, {text.substr(0, cut), text.substr(cut)}, label), whole, label);
  }
  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < text.size(); ++i) bytes.push_back(text.substr(i, 1));
  expect_same(run_pieces(o, bytes, "byte by byte"), whole, "byte by byte: " + std::string(text));
  return whole;
}

}  // namespace tessera::testing_util
