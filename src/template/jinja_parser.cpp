#include "template/jinja_parser.h"

#include <algorithm>

#include "core/error.h"
#include "template/jinja_lexer.h"

namespace tessera::jinja {

namespace {

using TT = Token::Type;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  StmtList parse_all() {
    std::string found;
    return parse_body({}, "", &found);
  }

 private:
  // ---- token helpers ----------------------------------------------------------------------
  const Token& cur() const { return toks_[pos_]; }
  const Token& peek(size_t k = 1) const { return toks_[std::min(pos_ + k, toks_.size() - 1)]; }
  void advance() {
    if (pos_ + 1 < toks_.size()) ++pos_;
  }
  bool is_op(const char* op) const { return cur().type == TT::kOp && cur().value == op; }
  bool is_name(const char* name) const { return cur().type == TT::kName && cur().value == name; }
  bool accept_op(const char* op) {
    if (!is_op(op)) return false;
    advance();
    return true;
  }
  bool accept_name(const char* name) {
    if (!is_name(name)) return false;
    advance();
    return true;
  }

  [[noreturn]] void fail(const std::string& msg) const {
    throw Error("chat template syntax error (line " + std::to_string(cur().line) + "): " + msg);
  }
  void expect_op(const char* op) {
    if (!accept_op(op)) fail(std::string("expected '") + op + "', got " + describe(cur()));
  }
  std::string expect_name() {
    if (cur().type != TT::kName) fail("expected a name, got " + describe(cur()));
    std::string v = cur().value;
    advance();
    return v;
  }
  void expect_block_end() {
    if (cur().type != TT::kBlockEnd) {
      fail("expected end of statement block, got " + describe(cur()));
    }
    advance();
  }

  ExprPtr make(Expr::Kind kind) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = cur().line;
    return e;
  }
  StmtPtr make_stmt(Stmt::Kind kind) {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    s->line = cur().line;
    return s;
  }

  // ---- statements -------------------------------------------------------------------------

  // Parses statements until a block tag whose name is in `end_tags`; consumes "{% name" and
  // stores the name in *found (the caller parses the rest of that tag). `opener` names the
  // enclosing block for error messages.
  StmtList parse_body(const std::vector<std::string>& end_tags, const std::string& opener,
                      std::string* found) {
    StmtList body;
    while (true) {
      const Token& t = cur();
      if (t.type == TT::kEof) {
        if (end_tags.empty()) return body;
        std::string want;
        for (size_t i = 0; i < end_tags.size(); ++i) {
          want += (i ? " or '" : "'") + end_tags[i] + "'";
        }
        fail("unexpected end of template; looking for " + want + " to close '" + opener + "'");
      }
      if (t.type == TT::kText) {
        auto s = make_stmt(Stmt::Kind::kText);
        s->text = t.value;
        advance();
        body.push_back(std::move(s));
      } else if (t.type == TT::kVarBegin) {
        auto s = make_stmt(Stmt::Kind::kOutput);
        advance();
        s->expr = parse_tuple_expr(true);
        if (cur().type != TT::kVarEnd) fail("unexpected " + describe(cur()));
        advance();
        body.push_back(std::move(s));
      } else if (t.type == TT::kBlockBegin) {
        advance();
        if (cur().type != TT::kName) fail("expected a tag name, got " + describe(cur()));
        const std::string& name = cur().value;
        if (std::find(end_tags.begin(), end_tags.end(), name) != end_tags.end()) {
          *found = name;
          advance();
          return body;
        }
        body.push_back(parse_statement(opener));
      } else {
        fail("unexpected " + describe(t));
      }
    }
  }

  StmtPtr parse_statement(const std::string& opener) {
    const std::string tag = cur().value;
    if (tag == "if") return parse_if();
    if (tag == "for") return parse_for();
    if (tag == "set") return parse_set();
    if (tag == "macro") return parse_macro();
    if (tag == "filter") return parse_filter_block();
    if (tag == "generation") {
      auto s = make_stmt(Stmt::Kind::kScope);
      advance();
      expect_block_end();
      std::string found;
      s->body = parse_body({"endgeneration"}, "generation", &found);
      expect_block_end();
      return s;
    }
    if (tag == "break" || tag == "continue") {
      auto s = make_stmt(tag == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue);
      advance();
      expect_block_end();
      return s;
    }
    std::string msg = "encountered unknown tag '" + tag + "'";
    if (!opener.empty()) msg += " inside '" + opener + "'";
    fail(msg);
  }

  StmtPtr parse_if() {
    auto s = make_stmt(Stmt::Kind::kIf);
    advance();  // if
    s->conditions.push_back(parse_tuple_expr(true));
    expect_block_end();
    while (true) {
      std::string found;
      StmtList body = parse_body({"elif", "else", "endif"}, "if", &found);
      if (found == "elif") {
        s->bodies.push_back(std::move(body));
        s->conditions.push_back(parse_tuple_expr(true));
        expect_block_end();
      } else if (found == "else") {
        s->bodies.push_back(std::move(body));
        expect_block_end();
        s->else_body = parse_body({"endif"}, "if", &found);
        expect_block_end();
        return s;
      } else {
        s->bodies.push_back(std::move(body));
        expect_block_end();
        return s;
      }
    }
  }

  std::vector<std::string> parse_targets() {
    std::vector<std::string> names;
    bool paren = accept_op("(");
    do {
      names.push_back(expect_name());
    } while (accept_op(","));
    if (paren) expect_op(")");
    return names;
  }

  StmtPtr parse_for() {
    auto s = make_stmt(Stmt::Kind::kFor);
    advance();  // for
    s->targets = parse_targets();
    if (!accept_name("in")) fail("expected 'in' in for loop, got " + describe(cur()));
    s->expr = parse_tuple_expr(false);
    if (accept_name("if")) s->cond = parse_tuple_expr(true);
    if (is_name("recursive")) fail("recursive for loops are not supported");
    expect_block_end();
    std::string found;
    s->body = parse_body({"else", "endfor"}, "for", &found);
    expect_block_end();
    if (found == "else") {
      s->else_body = parse_body({"endfor"}, "for", &found);
      expect_block_end();
    }
    return s;
  }

  StmtPtr parse_set() {
    advance();  // set
    std::vector<std::string> targets;
    std::string attr;
    std::string first = expect_name();
    targets.push_back(first);
    if (accept_op(".")) {
      attr = expect_name();
    } else {
      while (accept_op(",")) targets.push_back(expect_name());
    }
    if (accept_op("=")) {
      auto s = make_stmt(Stmt::Kind::kSet);
      s->targets = std::move(targets);
      s->target_attr = std::move(attr);
      s->expr = parse_tuple_expr(true);
      expect_block_end();
      return s;
    }
    if (!attr.empty() || targets.size() != 1) fail("expected '=' in set statement");
    auto s = make_stmt(Stmt::Kind::kSetBlock);
    s->targets = std::move(targets);
    expect_block_end();
    std::string found;
    s->body = parse_body({"endset"}, "set", &found);
    expect_block_end();
    return s;
  }

  StmtPtr parse_macro() {
    auto s = make_stmt(Stmt::Kind::kMacro);
    advance();  // macro
    s->name = expect_name();
    expect_op("(");
    while (!accept_op(")")) {
      if (!s->params.empty()) expect_op(",");
      if (accept_op(")")) break;  // trailing comma
      MacroParam p;
      p.name = expect_name();
      if (accept_op("=")) p.default_value = parse_expression(true);
      s->params.push_back(std::move(p));
    }
    expect_block_end();
    std::string found;
    s->body = parse_body({"endmacro"}, "macro", &found);
    if (cur().type == TT::kName && cur().value == s->name) advance();
    expect_block_end();
    return s;
  }

  StmtPtr parse_filter_block() {
    auto s = make_stmt(Stmt::Kind::kFilterBlock);
    advance();  // filter
    ExprPtr chain = parse_filter(nullptr);
    while (accept_op("|")) chain = parse_filter(std::move(chain));
    s->expr = std::move(chain);
    expect_block_end();
    std::string found;
    s->body = parse_body({"endfilter"}, "filter", &found);
    expect_block_end();
    return s;
  }

  // ---- expressions ------------------------------------------------------------------------

  bool at_expression_end() const {
    return cur().type == TT::kBlockEnd || cur().type == TT::kVarEnd || cur().type == TT::kEof ||
           is_op(")") || is_op("]") || is_op("}") || is_op("=");
  }

  // "a, b" without parentheses builds a tuple (for iterables, set values, print).
  ExprPtr parse_tuple_expr(bool with_condexpr) {
    ExprPtr first = parse_expression(with_condexpr);
    if (!is_op(",")) return first;
    auto t = make(Expr::Kind::kTuple);
    t->args.push_back(std::move(first));
    while (accept_op(",")) {
      if (at_expression_end() || is_name("if")) break;
      t->args.push_back(parse_expression(with_condexpr));
    }
    return t;
  }

  ExprPtr parse_expression(bool with_condexpr) {
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
    ExprPtr e = parse_or();
    while (is_name("if")) {
      advance();
      auto c = make(Expr::Kind::kCondExpr);
      ExprPtr cond = parse_or();
      ExprPtr otherwise = accept_name("else") ? parse_condexpr() : nullptr;
      c->args.push_back(std::move(e));
      c->args.push_back(std::move(cond));
      c->args.push_back(std::move(otherwise));
      e = std::move(c);
    }
    return e;
  }

  ExprPtr binary(const std::string& op, ExprPtr lhs, ExprPtr rhs) {
    auto b = make(Expr::Kind::kBinary);
    b->name = op;
    b->args.push_back(std::move(lhs));
    b->args.push_back(std::move(rhs));
    return b;
  }

  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (accept_name("or")) e = binary("or", std::move(e), parse_and());
    return e;
  }

  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (accept_name("and")) e = binary("and", std::move(e), parse_not());
    return e;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      auto u = make(Expr::Kind::kUnary);
      advance();
      u->name = "not";
      u->object = parse_not();
      return u;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    ExprPtr e = parse_math1();
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (cur().type == TT::kOp &&
          (cur().value == "==" || cur().value == "!=" || cur().value == "<" ||
           cur().value == "<=" || cur().value == ">" || cur().value == ">=")) {
        op = cur().value;
        advance();
      } else if (is_name("in")) {
        op = "in";
        advance();
      } else if (is_name("not") && peek().type == TT::kName && peek().value == "in") {
        op = "not in";
        advance();
        advance();
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(Expr::Kind::kCompare);
        cmp->object = std::move(e);
      }
      cmp->ops.push_back(op);
      cmp->args.push_back(parse_math1());
    }
    return cmp ? std::move(cmp) : std::move(e);
  }

  ExprPtr parse_math1() {
    ExprPtr e = parse_concat();
    while (is_op("+") || is_op("-")) {
      std::string op = cur().value;
      advance();
      e = binary(op, std::move(e), parse_concat());
    }
    return e;
  }

  ExprPtr parse_concat() {
    ExprPtr e = parse_math2();
    while (accept_op("~")) e = binary("~", std::move(e), parse_math2());
    return e;
  }

  ExprPtr parse_math2() {
    ExprPtr e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = cur().value;
      advance();
      e = binary(op, std::move(e), parse_pow());
    }
    return e;
  }

  ExprPtr parse_pow() {
    ExprPtr e = parse_unary(true);
    while (accept_op("**")) e = binary("**", std::move(e), parse_unary(true));
    return e;
  }

  ExprPtr parse_unary(bool with_filter) {
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      auto u = make(Expr::Kind::kUnary);
      u->name = cur().value;
      advance();
      u->object = parse_unary(false);
      e = std::move(u);
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  ExprPtr literal(Value v) {
    auto e = make(Expr::Kind::kLiteral);
    e->value = std::move(v);
    advance();
    return e;
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    switch (t.type) {
      case TT::kName: {
        const std::string& n = t.value;
        if (n == "true" || n == "True") return literal(Value(true));
        if (n == "false" || n == "False") return literal(Value(false));
        if (n == "none" || n == "None") return literal(Value::none());
        auto e = make(Expr::Kind::kName);
        e->name = n;
        advance();
        return e;
      }
      case TT::kString: {
        std::string s = t.value;
        advance();
        while (cur().type == TT::kString) {  // adjacent literals concatenate
          s += cur().value;
          advance();
        }
        auto e = make(Expr::Kind::kLiteral);
        e->value = Value(std::move(s));
        return e;
      }
      case TT::kInt:
        return literal(Value(t.int_value));
      case TT::kFloat:
        return literal(Value(t.float_value));
      case TT::kOp:
        if (t.value == "(") return parse_paren();
        if (t.value == "[") return parse_list();
        if (t.value == "{") return parse_dict();
        break;
      default:
        break;
    }
    fail("expected an expression, got " + describe(t));
  }

  ExprPtr parse_paren() {
    auto t = make(Expr::Kind::kTuple);
    advance();  // (
    if (accept_op(")")) return t;
    ExprPtr first = parse_expression(true);
    if (accept_op(")")) return first;
    t->args.push_back(std::move(first));
    while (accept_op(",")) {
      if (is_op(")")) break;
      t->args.push_back(parse_expression(true));
    }
    expect_op(")");
    return t;
  }

  ExprPtr parse_list() {
    auto l = make(Expr::Kind::kList);
    advance();  // [
    while (!accept_op("]")) {
      if (!l->args.empty()) {
        expect_op(",");
        if (accept_op("]")) break;
      }
      l->args.push_back(parse_expression(true));
    }
    return l;
  }

  ExprPtr parse_dict() {
    auto d = make(Expr::Kind::kDict);
    advance();  // {
    while (!accept_op("}")) {
      if (!d->args.empty()) {
        expect_op(",");
        if (accept_op("}")) break;
      }
      d->args.push_back(parse_expression(true));
      expect_op(":");
      d->args.push_back(parse_expression(true));
    }
    return d;
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      if (is_op(".")) {
        advance();
        if (cur().type == TT::kName) {
          auto g = make(Expr::Kind::kGetAttr);
          g->name = cur().value;
          advance();
          g->object = std::move(e);
          e = std::move(g);
        } else if (cur().type == TT::kInt) {
          auto g = make(Expr::Kind::kGetItem);
          g->object = std::move(e);
          g->args.push_back(literal(Value(cur().int_value)));
          e = std::move(g);
        } else {
          fail("expected an attribute name, got " + describe(cur()));
        }
      } else if (is_op("[")) {
        e = parse_subscript(std::move(e));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr obj) {
    advance();  // [
    ExprPtr start, stop, step;
    bool is_slice = false;
    if (!is_op(":")) start = parse_expression(true);
    if (accept_op(":")) {
      is_slice = true;
      if (!is_op("]") && !is_op(":")) stop = parse_expression(true);
      if (accept_op(":") && !is_op("]")) step = parse_expression(true);
    }
    expect_op("]");
    auto g = make(is_slice ? Expr::Kind::kSlice : Expr::Kind::kGetItem);
    g->object = std::move(obj);
    g->args.push_back(std::move(start));
    if (is_slice) {
      g->args.push_back(std::move(stop));
      g->args.push_back(std::move(step));
    }
    return g;
  }

  void parse_call_args(Expr& call) {
    expect_op("(");
    bool first = true;
    while (!accept_op(")")) {
      if (!first) {
        expect_op(",");
        if (accept_op(")")) break;
      }
      first = false;
      if (cur().type == TT::kName && peek().type == TT::kOp && peek().value == "=") {
        std::string key = cur().value;
        advance();
        advance();
        call.kwargs.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (!call.kwargs.empty()) fail("positional argument follows keyword argument");
        call.args.push_back(parse_expression(true));
      }
    }
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto c = make(Expr::Kind::kCall);
    c->object = std::move(callee);
    parse_call_args(*c);
    return c;
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    while (true) {
      if (accept_op("|")) {
        e = parse_filter(std::move(e));
      } else if (is_name("is")) {
        e = parse_test(std::move(e));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_filter(ExprPtr input) {
    auto f = make(Expr::Kind::kFilter);
    f->name = expect_name();
    f->object = std::move(input);
    if (is_op("(")) parse_call_args(*f);
    return f;
  }

  ExprPtr parse_test(ExprPtr subject) {
    advance();  // is
    auto t = make(Expr::Kind::kTest);
    t->negated = accept_name("not");
    t->name = expect_name();
    t->object = std::move(subject);
    if (is_op("(")) {
      parse_call_args(*t);
    } else {
      // jinja2 accepts one argument without parentheses: `x is divisibleby 3`.
      const Token& c = cur();
      bool starts_arg =
          c.type == TT::kString || c.type == TT::kInt || c.type == TT::kFloat ||
          (c.type == TT::kOp && (c.value == "[" || c.value == "{")) ||
          (c.type == TT::kName && c.value != "else" && c.value != "or" && c.value != "and");
      if (starts_arg) t->args.push_back(parse_postfix(parse_primary()));
    }
    return t;
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
};

}  // namespace

StmtList parse_template(std::string_view source) {
  return Parser(tokenize(source)).parse_all();
}

}  // namespace tessera::jinja
