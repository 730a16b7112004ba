#include "template/jinja_eval.h"

#include <cmath>
#include <memory>
#include <unordered_map>

#include "core/error.h"
#include "template/jinja_builtins.h"

namespace tessera::jinja {

namespace {

struct Scope {
  std::unordered_map<std::string, Value> vars;
  std::shared_ptr<Scope> parent;

  const Value* lookup(const std::string& name) const {
    for (const Scope* s = this; s; s = s->parent.get()) {
      auto it = s->vars.find(name);
      if (it != s->vars.end()) return &it->second;
    }
    return nullptr;
  }
};
using ScopePtr = std::shared_ptr<Scope>;

ScopePtr child_of(const ScopePtr& parent) {
  auto s = std::make_shared<Scope>();
  s->parent = parent;
  return s;
}

// ---- operators with Python semantics ----------------------------------------------------------

[[noreturn]] void unsupported(const std::string& op, const Value& a, const Value& b) {
  throw Error("unsupported operand type(s) for " + op + ": '" + a.type_name() + "' and '" +
              b.type_name() + "'");
}

double py_fmod(double a, double b) {
  double m = std::fmod(a, b);
  if (m != 0 && ((m < 0) != (b < 0))) m += b;
  return m;
}

Value repeat(const Value& seq, int64_t n) {
  if (seq.is_string()) {
    std::string out;
    for (int64_t i = 0; i < n; ++i) out += seq.str();
    return Value(out);
  }
  std::vector<Value> out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq.items().begin(), seq.items().end());
  return Value::list(std::move(out), seq.list_data().is_tuple);
}

Value arithmetic(const std::string& op, const Value& a, const Value& b) {
  a.require_defined();
  b.require_defined();
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      // Markup + str escapes the str (markupsafe's __add__ / __radd__).
      if (a.is_markup() || b.is_markup())
        return Value::markup((a.is_markup() ? a.str() : html_escape(a.str())) +
                             (b.is_markup() ? b.str() : html_escape(b.str())));
      return Value(a.str() + b.str());
    }
    if (a.is_list() && b.is_list() && a.list_data().is_tuple == b.list_data().is_tuple) {
      std::vector<Value> out = a.items();
      out.insert(out.end(), b.items().begin(), b.items().end());
      return Value::list(std::move(out), a.list_data().is_tuple);
    }
    if (a.is_string()) {
      throw Error("can only concatenate str (not \"" + b.type_name() + "\") to str");
    }
  }
  if (op == "*") {
    if ((a.is_string() || a.is_list()) && (b.is_int() || b.is_bool())) return repeat(a, b.as_int());
    if ((b.is_string() || b.is_list()) && (a.is_int() || a.is_bool())) return repeat(b, a.as_int());
  }
  if (!a.is_number() || !b.is_number()) unsupported(op, a, b);
  const bool floats = a.is_float() || b.is_float();
  if (op == "/" || op == "//" || op == "%") {
    if (b.as_double() == 0) throw Error(floats ? "float division by zero" : "division by zero");
  }
  if (op == "/") return Value(a.as_double() / b.as_double());
  if (floats) {
    double x = a.as_double(), y = b.as_double();
    if (op == "+") return Value(x + y);
    if (op == "-") return Value(x - y);
    if (op == "*") return Value(x * y);
    if (op == "//") return Value(std::floor(x / y));
    if (op == "%") return Value(py_fmod(x, y));
    if (op == "**") return Value(std::pow(x, y));
  } else {
    int64_t x = a.as_int(), y = b.as_int();
    if (op == "+") return Value(x + y);
    if (op == "-") return Value(x - y);
    if (op == "*") return Value(x * y);
    if (op == "//" || op == "%") {
      int64_t q = x / y, r = x % y;
      if (r != 0 && ((r < 0) != (y < 0))) {  // floor toward negative infinity
        --q;
        r += y;
      }
      return op == "//" ? Value(q) : Value(r);
    }
    if (op == "**") {
      if (y < 0) return Value(std::pow(static_cast<double>(x), static_cast<double>(y)));
      int64_t r = 1;
      for (int64_t i = 0; i < y; ++i) r *= x;
      return Value(r);
    }
  }
  unsupported(op, a, b);
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kString:
      if (!item.is_string()) {
        item.require_defined();
        throw Error("'in <string>' requires string as left operand, not " + item.type_name());
      }
      return container.str().find(item.str()) != std::string::npos;
    case Value::Kind::kDict:
      if (container.dict_data().is_namespace) break;
      return container.dict_data().find(item) != nullptr;
    case Value::Kind::kList:
      for (const auto& x : container.items()) {
        if (values_equal(x, item)) return true;
      }
      return false;
    case Value::Kind::kUndefined:
      return false;  // iterates as empty
    default:
      break;
  }
  throw Error("argument of type '" + container.type_name() + "' is not iterable");
}

bool compare(const std::string& op, const Value& a, const Value& b) {
  if (op == "==") return values_equal(a, b);
  if (op == "!=") return !values_equal(a, b);
  if (op == "<") return value_less(a, b);
  if (op == ">") return value_less(b, a);
  if (op == "<=") return value_less(a, b) || values_equal(a, b);
  if (op == ">=") return value_less(b, a) || values_equal(a, b);
  if (op == "in") return contains(b, a);
  return !contains(b, a);  // "not in"
}

// ---- the renderer -----------------------------------------------------------------------------

class Renderer {
 public:
  std::string render(const StmtList& program, const Value& context) {
    auto globals = std::make_shared<Scope>();
    for (const char* fn : {"range", "namespace", "dict", "raise_exception", "strftime_now"}) {
      globals->vars[fn] = make_global_function(fn);
    }
    auto top = child_of(globals);
    for (const auto& [k, v] : context.dict_data().items) top->vars[k.str()] = v;
    std::string out;
    try {
      exec(program, top, out);
    } catch (const TemplateRaised&) {
      throw;
    } catch (const Error& e) {
      throw Error("chat template error (line " + std::to_string(line_) + "): " + e.what());
    }
    return out;
  }

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  void exec(const StmtList& body, const ScopePtr& scope, std::string& out) {
    for (const auto& s : body) {
      exec(*s, scope, out);
      if (flow_ != Flow::kNormal) return;
    }
  }

  void exec(const Stmt& s, const ScopePtr& scope, std::string& out) {
    line_ = s.line;
    switch (s.kind) {
      case Stmt::Kind::kText:
        out += s.text;
        return;
      case Stmt::Kind::kOutput:
        out += eval(*s.expr, scope).to_str();
        return;
      case Stmt::Kind::kIf:
        for (size_t i = 0; i < s.conditions.size(); ++i) {
          if (eval(*s.conditions[i], scope).truthy()) {
            exec(s.bodies[i], scope, out);
            return;
          }
        }
        exec(s.else_body, scope, out);
        return;
      case Stmt::Kind::kFor:
        exec_for(s, scope, out);
        return;
      case Stmt::Kind::kSet: {
        Value v = eval(*s.expr, scope);
        if (!s.target_attr.empty()) {
          const Value* ns = scope->lookup(s.targets[0]);
          if (!ns || !ns->is_dict() || !ns->dict_data().is_namespace) {
            throw Error("cannot assign attribute on non-namespace object '" + s.targets[0] + "'");
          }
          ns->dict_data().set(Value(s.target_attr), std::move(v));
        } else {
          assign(s.targets, v, *scope);
        }
        return;
      }
      case Stmt::Kind::kSetBlock: {
        std::string captured;
        exec(s.body, scope, captured);
        scope->vars[s.targets[0]] = Value(std::move(captured));
        return;
      }
      case Stmt::Kind::kMacro:
        scope->vars[s.name] = make_macro(s, scope);
        return;
      case Stmt::Kind::kFilterBlock: {
        std::string captured;
        exec(s.body, scope, captured);
        out += apply_filter_chain(*s.expr, Value(std::move(captured)), scope).to_str();
        return;
      }
      case Stmt::Kind::kBreak:
        flow_ = Flow::kBreak;
        return;
      case Stmt::Kind::kContinue:
        flow_ = Flow::kContinue;
        return;
      case Stmt::Kind::kScope:
        exec(s.body, scope, out);
        return;
    }
  }

  static void assign(const std::vector<std::string>& targets, const Value& v, Scope& scope) {
    if (targets.size() == 1) {
      scope.vars[targets[0]] = v;
      return;
    }
    std::vector<Value> parts = v.iterate();
    if (parts.size() != targets.size()) {
      throw Error(std::string(parts.size() < targets.size() ? "not enough" : "too many") +
                  " values to unpack (expected " + std::to_string(targets.size()) + ")");
    }
    for (size_t i = 0; i < targets.size(); ++i) scope.vars[targets[i]] = parts[i];
  }

  void exec_for(const Stmt& s, const ScopePtr& scope, std::string& out) {
    Value iterable = eval(*s.expr, scope);
    std::vector<Value> items = iterable.iterate();
    if (s.cond) {  // `for x in xs if cond`: loop.* counts only the kept items
      std::vector<Value> kept;
      for (auto& item : items) {
        auto probe = child_of(scope);
        assign(s.targets, item, *probe);
        if (eval(*s.cond, probe).truthy()) kept.push_back(std::move(item));
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      exec(s.else_body, scope, out);
      return;
    }
    const int64_t n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
      auto iter_scope = child_of(scope);
      const size_t u = static_cast<size_t>(i);
      Value loop = Value::dict({
          {Value("index"), Value(i + 1)},
          {Value("index0"), Value(i)},
          {Value("revindex"), Value(n - i)},
          {Value("revindex0"), Value(n - i - 1)},
          {Value("first"), Value(i == 0)},
          {Value("last"), Value(i == n - 1)},
          {Value("length"), Value(n)},
          {Value("depth"), Value(1)},
          {Value("depth0"), Value(0)},
          {Value("previtem"), i > 0 ? items[u - 1] : Value::undefined("there is no previous item")},
          {Value("nextitem"), i + 1 < n ? items[u + 1] : Value::undefined("there is no next item")},
          {Value("cycle"), Value::function([i](const CallArgs& a) -> Value {
             if (a.positional.empty()) throw Error("no items for cycling given");
             return a.positional[static_cast<size_t>(i) % a.positional.size()];
           })},
      });
      iter_scope->vars["loop"] = std::move(loop);
      assign(s.targets, items[u], *iter_scope);
      exec(s.body, iter_scope, out);
      if (flow_ == Flow::kBreak) {
        flow_ = Flow::kNormal;
        break;
      }
      flow_ = Flow::kNormal;
    }
  }

  Value make_macro(const Stmt& s, const ScopePtr& defining_scope) {
    // The defining scope stores the macro, so holding it strongly here would form a cycle;
    // the scope outlives every call made during the render. The Stmt outlives the render.
    std::weak_ptr<Scope> weak_scope = defining_scope;
    return Value::function([this, &s, weak_scope](const CallArgs& a) -> Value {
      ScopePtr defining = weak_scope.lock();
      if (!defining) throw Error("macro '" + s.name + "' called outside its scope");
      auto call_scope = child_of(defining);
      if (a.positional.size() > s.params.size()) {
        throw Error("macro '" + s.name + "' takes not more than " +
                    std::to_string(s.params.size()) + " argument(s)");
      }
      for (size_t i = 0; i < s.params.size(); ++i) {
        const MacroParam& p = s.params[i];
        if (const Value* v = a.get(i, p.name)) {
          call_scope->vars[p.name] = *v;
        } else if (p.default_value) {
          call_scope->vars[p.name] = eval(*p.default_value, call_scope);
        } else {
          call_scope->vars[p.name] = Value::undefined("'" + p.name + "' is undefined");
        }
      }
      for (const auto& [k, v] : a.keyword) {
        bool known = false;
        for (const auto& p : s.params) known = known || p.name == k;
        if (!known) throw Error("macro '" + s.name + "' takes no keyword argument '" + k + "'");
      }
      std::string out;
      const int saved_line = line_;
      exec(s.body, call_scope, out);
      line_ = saved_line;
      flow_ = Flow::kNormal;
      return Value(std::move(out));
    });
  }

  CallArgs eval_args(const Expr& e, const ScopePtr& scope) {
    CallArgs a;
    a.positional.reserve(e.args.size());
    for (const auto& x : e.args) a.positional.push_back(eval(*x, scope));
    for (const auto& [k, x] : e.kwargs) a.keyword.emplace_back(k, eval(*x, scope));
    return a;
  }

  Value apply_filter_chain(const Expr& f, const Value& input, const ScopePtr& scope) {
    Value in = f.object ? apply_filter_chain(*f.object, input, scope) : input;
    return apply_filter(f.name, in, eval_args(f, scope));
  }

  Value eval(const Expr& e, const ScopePtr& scope) {
    switch (e.kind) {
      case Expr::Kind::kLiteral:
        return e.value;
      case Expr::Kind::kName: {
        const Value* v = scope->lookup(e.name);
        return v ? *v : Value::undefined("'" + e.name + "' is undefined");
      }
      case Expr::Kind::kList:
      case Expr::Kind::kTuple: {
        std::vector<Value> items;
        items.reserve(e.args.size());
        for (const auto& x : e.args) items.push_back(eval(*x, scope));
        return Value::list(std::move(items), e.kind == Expr::Kind::kTuple);
      }
      case Expr::Kind::kDict: {
        Value d = Value::dict();
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          d.dict_data().set(eval(*e.args[i], scope), eval(*e.args[i + 1], scope));
        }
        return d;
      }
      case Expr::Kind::kGetAttr:
        return get_attr(eval(*e.object, scope), e.name);
      case Expr::Kind::kGetItem:
        return get_item(eval(*e.object, scope), eval(*e.args[0], scope));
      case Expr::Kind::kSlice: {
        Value obj = eval(*e.object, scope);
        Value parts[3];
        const Value* ptrs[3] = {nullptr, nullptr, nullptr};
        for (int i = 0; i < 3; ++i) {
          if (e.args[static_cast<size_t>(i)]) {
            parts[i] = eval(*e.args[static_cast<size_t>(i)], scope);
            ptrs[i] = &parts[i];
          }
        }
        return get_slice(obj, ptrs[0], ptrs[1], ptrs[2]);
      }
      case Expr::Kind::kCall:
        return eval_call(e, scope);
      case Expr::Kind::kFilter:
        return apply_filter(e.name, eval(*e.object, scope), eval_args(e, scope));
      case Expr::Kind::kTest: {
        bool r = apply_test(e.name, eval(*e.object, scope), eval_args(e, scope));
        return Value(e.negated ? !r : r);
      }
      case Expr::Kind::kUnary: {
        Value v = eval(*e.object, scope);
        if (e.name == "not") return Value(!v.truthy());
        v.require_defined();
        if (!v.is_number()) {
          throw Error("bad operand type for unary " + e.name + ": '" + v.type_name() + "'");
        }
        if (e.name == "+") return v.is_float() ? Value(v.as_double()) : Value(v.as_int());
        return v.is_float() ? Value(-v.as_double()) : Value(-v.as_int());
      }
      case Expr::Kind::kBinary: {
        if (e.name == "and" || e.name == "or") {  // short-circuit, yielding an operand
          Value lhs = eval(*e.args[0], scope);
          bool take_lhs = e.name == "and" ? !lhs.truthy() : lhs.truthy();
          return take_lhs ? lhs : eval(*e.args[1], scope);
        }
        Value lhs = eval(*e.args[0], scope);
        Value rhs = eval(*e.args[1], scope);
        if (e.name == "~") return Value(lhs.to_str() + rhs.to_str());
        return arithmetic(e.name, lhs, rhs);
      }
      case Expr::Kind::kCompare: {
        Value lhs = eval(*e.object, scope);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value rhs = eval(*e.args[i], scope);
          if (!compare(e.ops[i], lhs, rhs)) return Value(false);
          lhs = std::move(rhs);
        }
        return Value(true);
      }
      case Expr::Kind::kCondExpr: {
        if (eval(*e.args[1], scope).truthy()) return eval(*e.args[0], scope);
        if (e.args[2]) return eval(*e.args[2], scope);
        return Value::undefined(
            "the inline if-expression evaluated to false and no else "
            "section was defined.");
      }
    }
    return Value();
  }

  Value eval_call(const Expr& e, const ScopePtr& scope) {
    Value callee;
    if (e.object->kind == Expr::Kind::kGetAttr) {
      // obj.method(...) calls the method directly instead of binding it first.
      Value obj = eval(*e.object->object, scope);
      obj.require_defined();
      CallArgs args = eval_args(e, scope);
      if (auto r = call_method(obj, e.object->name, args)) return *r;
      callee = get_attr(obj, e.object->name);
      return call(callee, args, e.object->name);
    }
    callee = eval(*e.object, scope);
    std::string what = e.object->kind == Expr::Kind::kName ? e.object->name : "object";
    return call(callee, eval_args(e, scope), what);
  }

  static Value call(const Value& callee, const CallArgs& args, const std::string& what) {
    callee.require_defined();
    if (!callee.is_function()) {
      throw Error("'" + callee.type_name() + "' object is not callable (" + what + ")");
    }
    return callee.fn()(args);
  }

  Flow flow_ = Flow::kNormal;
  int line_ = 0;
};

}  // namespace

std::string render_template(const StmtList& program, const Value& context) {
  return Renderer().render(program, context);
}

}  // namespace tessera::jinja
