// Syntax tree of a parsed template. Nodes are immutable after parsing, so one parsed template
// may be rendered from several threads at once.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "template/jinja_value.h"

namespace tessera::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using StmtList = std::vector<StmtPtr>;

struct Expr {
  enum class Kind {
    kLiteral,   // value
    kName,      // name
    kList,      // args = elements
    kTuple,     // args = elements
    kDict,      // args = k0, v0, k1, v1, ...
    kGetAttr,   // object . name
    kGetItem,   // object [ args[0] ]
    kSlice,     // object [ args[0] : args[1] : args[2] ]  (null = omitted)
    kCall,      // object ( args, kwargs )
    kFilter,    // object | name ( args, kwargs ); object null inside {% filter %}
    kTest,      // object is [not] name ( args ); negated
    kUnary,     // name in {"-", "+", "not"}, object
    kBinary,    // name = operator, args = {lhs, rhs}; includes "and", "or", "~", "in", "not in"
    kCompare,   // object, then ops[i] applied to args[i] (chained: a < b < c)
    kCondExpr,  // args = {then, cond, else-or-null}
  };
  Kind kind;
  int line = 0;
  Value value;
  std::string name;
  ExprPtr object;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
  bool negated = false;
};

struct MacroParam {
  std::string name;
  ExprPtr default_value;  // null: required (undefined when not passed)
};

struct Stmt {
  enum class Kind {
    kText,         // text
    kOutput,       // {{ expr }}
    kIf,           // conditions[i] guards bodies[i]; else_body
    kFor,          // for targets in expr [if cond] : body, else_body
    kSet,          // targets = expr, or target_ns.attr = expr
    kSetBlock,     // {% set targets[0] %}body{% endset %}
    kMacro,        // name(params): body
    kFilterBlock,  // {% filter expr %}body{% endfilter %}
    kBreak,
    kContinue,
    kScope,  // body rendered in place ({% generation %})
  };
  Kind kind;
  int line = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr cond;
  std::vector<ExprPtr> conditions;
  std::vector<StmtList> bodies;
  StmtList body;
  StmtList else_body;
  std::vector<std::string> targets;
  std::string target_attr;  // kSet on a namespace: targets[0] . target_attr
  std::string name;
  std::vector<MacroParam> params;
};

}  // namespace tessera::jinja
