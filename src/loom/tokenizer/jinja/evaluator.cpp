#include "loom/tokenizer/jinja/evaluator.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "loom/core/error.h"
#include "loom/tokenizer/jinja/text.h"

namespace loom::tokenizer::jinja {

namespace {

int64_t checked(bool overflow, int64_t v) {
  if (overflow) throw EvalError("integer overflow (loom's templates use 64-bit integers)");
  return v;
}

// Python's floor division and modulo (the result takes the divisor's sign).
int64_t floordiv(int64_t a, int64_t b) {
  if (b == 0) throw EvalError("integer division or modulo by zero");
  if (a == std::numeric_limits<int64_t>::min() && b == -1) throw EvalError("integer overflow");
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t pymod(int64_t a, int64_t b) {
  if (b == 0) throw EvalError("integer division or modulo by zero");
  if (b == -1) return 0;
  int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

std::string object_name(const Value& v) {
  if (v.is_none()) return "None";
  return fmt::format("'{} object'", v.type_name());
}

// Python slice bounds for a sequence of length n.
std::vector<size_t> slice_indices(int64_t n, const Value& start, const Value& stop, const Value& step) {
  auto as_index = [](const Value& v, const char* what) {
    if (!v.is_int() && !v.is_bool()) throw EvalError(fmt::format("slice {} must be an integer or none", what));
    return v.as_int();
  };
  const int64_t st = step.is_none() || step.is_undefined() ? 1 : as_index(step, "step");
  if (st == 0) throw EvalError("slice step cannot be zero");
  auto clamp = [&](const Value& v, int64_t fallback) {
    if (v.is_none() || v.is_undefined()) return fallback;
    int64_t i = as_index(v, "index");
    if (i < 0) i += n;
    if (st > 0) return std::clamp<int64_t>(i, 0, n);
    return std::clamp<int64_t>(i, -1, n - 1);
  };
  const int64_t b = clamp(start, st > 0 ? 0 : n - 1);
  const int64_t e = clamp(stop, st > 0 ? n : -1);
  std::vector<size_t> out;
  for (int64_t i = b; st > 0 ? i < e : i > e; i += st) out.push_back(size_t(i));
  return out;
}

}  // namespace

const Value* Evaluator::Scope::find(const std::string& name) const {
  for (const Scope* s = this; s; s = s->parent.get()) {
    auto it = s->vars.find(name);
    if (it != s->vars.end()) return &it->second;
  }
  return nullptr;
}

Evaluator::Evaluator(std::string_view name, const Limits& limits) : name_(name), limits_(limits) {}

Evaluator::~Evaluator() {
  for (const auto& weak : namespaces_)
    if (auto ns = weak.lock()) ns->attrs.items.clear();
}

std::string Evaluator::render(const Body& program, const Dict& variables) {
  auto globals = std::make_shared<Scope>();
  add_globals(*this, globals->vars);
  scope_ = std::make_shared<Scope>();
  scope_->parent = globals;
  for (const auto& [k, v] : variables.items) scope_->vars[k.str()] = v;
  std::string out;
  out_ = &out;
  render_body(program);
  out_ = nullptr;
  return out;
}

void Evaluator::check_size(size_t bytes) const {
  if (bytes > limits_.max_output_bytes)
    throw EvalError(fmt::format("the template builds more than {} bytes of text; it is probably looping", limits_.max_output_bytes));
}

void Evaluator::spend(int64_t n) {
  spent_ += n;
  if (spent_ > limits_.max_iterations)
    throw EvalError(fmt::format("the template ran more than {} loop iterations; it is probably looping", limits_.max_iterations));
}

void Evaluator::write(std::string_view s) {
  if (out_->size() + s.size() > limits_.max_output_bytes)
    throw EvalError(fmt::format("the template's output exceeds {} bytes", limits_.max_output_bytes));
  out_->append(s);
}

std::string Evaluator::capture(const Body& body) {
  std::string buf;
  std::string* saved = out_;
  out_ = &buf;
  render_body(body);
  out_ = saved;
  return buf;
}

Evaluator::Flow Evaluator::render_body(const Body& body) {
  for (const auto& n : body) {
    const Flow f = render_node(*n);
    if (f != Flow::Normal) return f;
  }
  return Flow::Normal;
}

Evaluator::Flow Evaluator::render_node(const Node& n) {
  try {
    switch (n.kind) {
      case Node::Kind::Text: write(n.text); break;
      case Node::Kind::Output: write(eval(*n.expr).str()); break;
      case Node::Kind::If:
        for (const auto& [cond, body] : n.branches) {
          if (!cond || eval(*cond).truthy()) return render_body(body);
        }
        break;
      case Node::Kind::For: render_for(n); break;
      case Node::Kind::Set: render_set(n, eval(*n.expr)); break;
      case Node::Kind::SetBlock: render_set(n, Value(capture(n.body))); break;
      case Node::Kind::Macro: scope_->vars[n.name] = define_macro(n); break;
      case Node::Kind::Break: return Flow::Break;
      case Node::Kind::Continue: return Flow::Continue;
      case Node::Kind::FilterBlock: {
        const Value text(capture(n.body));
        write(eval_filter(*n.expr, &text).str());
        break;
      }
      case Node::Kind::Block: return render_body(n.body);
    }
  } catch (const EvalError& e) {
    fail_at(name_, n.pos, e.what());
  }
  return Flow::Normal;
}

void Evaluator::render_set(const Node& n, Value value) {
  if (n.attr_target) {
    const Value target = lookup(n.targets[0]);
    if (!target.is_namespace())
      throw EvalError(fmt::format("cannot set attribute '{}' of '{}': only a namespace() object can be changed",
                                  n.targets[1], n.targets[0]));
    target.as_namespace().attrs.set(Value(n.targets[1]), std::move(value));
    return;
  }
  if (n.targets.size() == 1) {
    scope_->vars[n.targets[0]] = std::move(value);
    return;
  }
  const List items = iterate(value);
  if (items.size() != n.targets.size())
    throw EvalError(fmt::format("cannot unpack {} values into {} names", items.size(), n.targets.size()));
  for (size_t i = 0; i < items.size(); ++i) scope_->vars[n.targets[i]] = items[i];
}

void Evaluator::render_for(const Node& n) {
  const List all = iterate(eval(*n.expr));
  const auto saved = scope_;
  // Every iteration gets a fresh scope: names set inside neither leak out of
  // the loop nor carry over to the next iteration (that is what namespace()
  // is for), as in Jinja2.
  auto enter = [&](const Value& item) {
    scope_ = std::make_shared<Scope>();
    scope_->parent = saved;
    if (n.targets.size() == 1) {
      scope_->vars[n.targets[0]] = item;
      return;
    }
    const List parts = iterate(item);
    if (parts.size() != n.targets.size())
      throw EvalError(fmt::format("cannot unpack {} values into {} loop variables", parts.size(), n.targets.size()));
    for (size_t i = 0; i < parts.size(); ++i) scope_->vars[n.targets[i]] = parts[i];
  };
  struct Restore {
    Evaluator& ev;
    std::shared_ptr<Scope> scope;
    ~Restore() { ev.scope_ = scope; }
  } restore{*this, saved};
  List items;
  if (n.condition) {
    for (const Value& item : all) {
      spend(1);
      enter(item);
      if (eval(*n.condition).truthy()) items.push_back(item);
    }
  } else {
    items = all;
  }
  scope_ = saved;
  if (items.empty()) {
    render_body(n.else_body);
    return;
  }
  const auto len = int64_t(items.size());
  for (int64_t i = 0; i < len; ++i) {
    spend(1);
    enter(items[size_t(i)]);
    Dict loop;
    loop.set("index", Value(i + 1));
    loop.set("index0", Value(i));
    loop.set("revindex", Value(len - i));
    loop.set("revindex0", Value(len - i - 1));
    loop.set("first", Value(i == 0));
    loop.set("last", Value(i == len - 1));
    loop.set("length", Value(len));
    loop.set("depth", Value(1));
    loop.set("depth0", Value(0));
    loop.set("previtem", i > 0 ? items[size_t(i - 1)] : Value::undefined("there is no previous item"));
    loop.set("nextitem", i + 1 < len ? items[size_t(i + 1)] : Value::undefined("there is no next item"));
    loop.set("cycle", Value::callable("loop.cycle", [i](CallArgs& args) {
      if (args.positional.empty()) throw EvalError("loop.cycle() needs at least one value");
      return args.positional[size_t(i) % args.positional.size()];
    }));
    scope_->vars["loop"] = Value::dict(std::move(loop));
    if (render_body(n.body) == Flow::Break) break;
  }
}

Value Evaluator::define_macro(const Node& n) {
  macro_scopes_.push_back(scope_);
  const std::weak_ptr<Scope> defined_in = scope_;
  const Node* node = &n;
  return Value::callable(n.name, [this, node, defined_in](CallArgs& args) {
    if (args.positional.size() > node->params.size())
      throw EvalError(fmt::format("macro '{}' takes {} argument{} ({} given)", node->name, node->params.size(),
                                  node->params.size() == 1 ? "" : "s", args.positional.size()));
    if (++call_depth_ > limits_.max_call_depth) {
      --call_depth_;
      throw EvalError(fmt::format("macros call each other more than {} deep", limits_.max_call_depth));
    }
    auto saved = scope_;
    scope_ = std::make_shared<Scope>();
    scope_->parent = defined_in.lock();
    std::string out;
    try {
      for (const auto& [key, v] : args.named) {
        bool known = false;
        for (const auto& p : node->params) known = known || p.first == key;
        if (!known) throw EvalError(fmt::format("macro '{}' has no parameter named '{}'", node->name, key));
      }
      for (size_t i = 0; i < node->params.size(); ++i) {
        const auto& [param, fallback] = node->params[i];
        const Value missing = Value::undefined(fmt::format("parameter '{}' was not provided", param));
        Value v = args.get(i, param, missing);
        if (v.is_undefined() && fallback) v = eval(*fallback);
        scope_->vars[param] = std::move(v);
      }
      out = capture(node->body);
    } catch (...) {
      scope_ = saved;
      --call_depth_;
      throw;
    }
    scope_ = saved;
    --call_depth_;
    return Value(std::move(out));
  });
}

Value Evaluator::lookup(const std::string& name) const {
  if (const Value* v = scope_->find(name)) return *v;
  return Value::undefined(fmt::format("'{}' is undefined", name));
}

Value Evaluator::eval(const Expr& e) {
  try {
    return eval_inner(e);
  } catch (const EvalError& err) {
    fail_at(name_, e.pos, err.what());
  }
}

CallArgs Evaluator::eval_args(const Expr& e, size_t first_child) {
  CallArgs args;
  for (size_t i = first_child; i < e.children.size(); ++i) args.positional.push_back(eval(*e.children[i]));
  for (const auto& [k, v] : e.kwargs) args.named.emplace_back(k, eval(*v));
  return args;
}

Value Evaluator::eval_inner(const Expr& e) {
  using K = Expr::Kind;
  switch (e.kind) {
    case K::Literal: return e.value;
    case K::Name: return lookup(e.name);
    case K::List:
    case K::Tuple: {
      List items;
      for (const auto& c : e.children) items.push_back(eval(*c));
      return e.kind == K::Tuple ? Value::tuple(std::move(items)) : Value::list(std::move(items));
    }
    case K::Dict: {
      Dict d;
      for (size_t i = 0; i + 1 < e.children.size(); i += 2) {
        Value key = eval(*e.children[i]);
        if (key.is_list() || key.is_dict() || key.is_undefined())
          throw EvalError(fmt::format("unhashable type: '{}'", key.type_name()));
        d.set(std::move(key), eval(*e.children[i + 1]));
      }
      return Value::dict(std::move(d));
    }
    case K::Attr: return get_attr(eval(*e.children[0]), e.name);
    case K::Item: return get_item(eval(*e.children[0]), eval(*e.children[1]));
    case K::Slice: {
      const Value obj = eval(*e.children[0]);
      obj.require_defined();
      Value parts[3];
      for (int i = 0; i < 3; ++i) parts[i] = e.children[size_t(i) + 1] ? eval(*e.children[size_t(i) + 1]) : Value::none();
      if (obj.is_list()) {
        List out;
        for (size_t i : slice_indices(int64_t(obj.as_list().size()), parts[0], parts[1], parts[2])) out.push_back(obj.as_list()[i]);
        return Value::list(std::move(out));
      }
      if (obj.is_string()) {
        const std::string& s = obj.as_string();
        const std::vector<size_t> starts = text::char_starts(s);
        std::string out;
        for (size_t i : slice_indices(int64_t(starts.size() - 1), parts[0], parts[1], parts[2]))
          out.append(s, starts[i], starts[i + 1] - starts[i]);
        return Value(std::move(out));
      }
      return Value::undefined(fmt::format("{} cannot be sliced", object_name(obj)));
    }
    case K::Call: return eval_call(e);
    case K::Filter: return eval_filter(e, nullptr);
    case K::Test: {
      const Value v = eval(*e.children[0]);
      CallArgs args = eval_args(e, 1);
      return Value(apply_test(*this, e.name, v, args) != e.negated);
    }
    case K::Unary: {
      const Value v = eval(*e.children[0]);
      if (e.name == "not") return Value(!v.truthy());
      v.require_defined();
      if (v.is_float()) return Value(e.name == "-" ? -v.as_float() : v.as_float());
      if (v.is_int() || v.is_bool()) {
        if (e.name == "+") return Value(v.as_int());
        return Value(checked(v.as_int() == std::numeric_limits<int64_t>::min(), -v.as_int()));
      }
      throw EvalError(fmt::format("bad operand type for unary {}: '{}'", e.name, v.type_name()));
    }
    case K::Binary: return eval_binary(e);
    case K::Compare: return Value(eval_compare(e));
    case K::Cond: {
      if (eval(*e.children[1]).truthy()) return eval(*e.children[0]);
      if (e.children[2]) return eval(*e.children[2]);
      return Value::undefined(fmt::format("the inline if-expression on line {} was false and has no else part", e.pos.line));
    }
  }
  return Value();
}

Value Evaluator::eval_filter(const Expr& e, const Value* block_input) {
  Value input;
  if (e.children[0]) {
    input = block_input ? eval_filter(*e.children[0], block_input) : eval(*e.children[0]);
  } else {
    input = *block_input;
  }
  CallArgs args = eval_args(e, 1);
  try {
    return apply_filter(*this, e.name, input, args);
  } catch (const EvalError& err) {
    fail_at(name_, e.pos, fmt::format("filter '{}': {}", e.name, err.what()));
  }
}

Value Evaluator::call(const Value& fn, CallArgs& args) {
  fn.require_defined();
  if (!fn.is_callable()) throw EvalError(fmt::format("'{}' object is not callable", fn.type_name()));
  return fn.as_callable().fn(args);
}

Value Evaluator::eval_call(const Expr& e) {
  const Expr& callee = *e.children[0];
  if (callee.kind == Expr::Kind::Attr) {
    const Value obj = eval(*callee.children[0]);
    if (!obj.is_undefined() && has_method(obj, callee.name)) {
      CallArgs args = eval_args(e, 1);
      return call_method(*this, obj, callee.name, args);
    }
    const Value fn = get_attr(obj, callee.name);
    CallArgs args = eval_args(e, 1);
    return call(fn, args);
  }
  const Value fn = eval(callee);
  CallArgs args = eval_args(e, 1);
  return call(fn, args);
}

Value Evaluator::get_attr(const Value& obj, const std::string& name) {
  obj.require_defined();
  if (has_method(obj, name)) {
    // Jinja's getattr finds methods before keys: d.items is the method.
    const Value self = obj;
    return Value::callable(name, [this, self, name](CallArgs& args) { return call_method(*this, self, name, args); });
  }
  if (obj.is_dict()) {
    if (const Value* v = obj.as_dict().find(name)) return *v;
  } else if (obj.is_namespace()) {
    if (const Value* v = obj.as_namespace().attrs.find(name)) return *v;
  }
  return Value::undefined(fmt::format("{} has no attribute '{}'", object_name(obj), name));
}

Value Evaluator::get_item(const Value& obj, const Value& key) {
  obj.require_defined();
  if (obj.is_dict()) {
    if (const Value* v = obj.as_dict().find(key)) return *v;
  } else if (obj.is_namespace()) {
    if (const Value* v = obj.as_namespace().attrs.find(key)) return *v;
  } else if ((obj.is_list() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    int64_t i = key.as_int();
    if (obj.is_list()) {
      const auto n = int64_t(obj.as_list().size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return obj.as_list()[size_t(i)];
    } else {
      const std::vector<size_t> starts = text::char_starts(obj.as_string());
      const auto n = int64_t(starts.size() - 1);
      if (i < 0) i += n;
      if (i >= 0 && i < n) return Value(obj.as_string().substr(starts[size_t(i)], starts[size_t(i) + 1] - starts[size_t(i)]));
    }
    return Value::undefined(fmt::format("{} has no element {}", object_name(obj), key.as_int()));
  }
  // obj['items'] falls back to the attribute, as Jinja's getitem does.
  if (key.is_string() && has_method(obj, key.as_string())) return get_attr(obj, key.as_string());
  return Value::undefined(fmt::format("{} has no attribute {}", object_name(obj), key.repr()));
}

Value Evaluator::eval_binary(const Expr& e) {
  const std::string& op = e.name;
  const Value a = eval(*e.children[0]);
  if (op == "and") return a.truthy() ? eval(*e.children[1]) : a;
  if (op == "or") return a.truthy() ? a : eval(*e.children[1]);
  const Value b = eval(*e.children[1]);
  if (op == "~") {
    std::string s = a.str();
    const std::string t = b.str();
    check_size(s.size() + t.size());
    return Value(s + t);
  }
  a.require_defined();
  b.require_defined();
  auto unsupported = [&]() -> Value {
    throw EvalError(fmt::format("unsupported operand type(s) for {}: '{}' and '{}'", op, a.type_name(), b.type_name()));
  };
  const bool nums = a.is_number() && b.is_number();
  const bool ints = nums && !a.is_float() && !b.is_float();
  int64_t r = 0;
  if (op == "+") {
    if (ints) {
      const bool overflow = __builtin_add_overflow(a.as_int(), b.as_int(), &r);
      return Value(checked(overflow, r));
    }
    if (nums) return Value(a.as_float() + b.as_float());
    if (a.is_string() && b.is_string()) {
      check_size(a.as_string().size() + b.as_string().size());
      return Value(a.as_string() + b.as_string());
    }
    if (a.is_list() && b.is_list()) {
      check_size((a.as_list().size() + b.as_list().size()) * sizeof(Value));
      List out = a.as_list();
      out.insert(out.end(), b.as_list().begin(), b.as_list().end());
      return Value::list(std::move(out));
    }
    return unsupported();
  }
  if (op == "-") {
    if (ints) {
      const bool overflow = __builtin_sub_overflow(a.as_int(), b.as_int(), &r);
      return Value(checked(overflow, r));
    }
    if (nums) return Value(a.as_float() - b.as_float());
    return unsupported();
  }
  if (op == "*") {
    if (ints) {
      const bool overflow = __builtin_mul_overflow(a.as_int(), b.as_int(), &r);
      return Value(checked(overflow, r));
    }
    if (nums) return Value(a.as_float() * b.as_float());
    const Value& seq = a.is_string() || a.is_list() ? a : b;
    const Value& count = a.is_string() || a.is_list() ? b : a;
    if ((seq.is_string() || seq.is_list()) && (count.is_int() || count.is_bool())) {
      const int64_t n = std::max<int64_t>(0, count.as_int());
      // Counted in bytes: a list element costs a Value.
      const size_t unit = seq.is_string() ? seq.as_string().size() : seq.as_list().size() * sizeof(Value);
      if (unit > 0 && uint64_t(n) > limits_.max_output_bytes / unit) check_size(limits_.max_output_bytes + 1);
      if (seq.is_string()) {
        std::string out;
        for (int64_t i = 0; i < n; ++i) out += seq.as_string();
        return Value(std::move(out));
      }
      List out;
      for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq.as_list().begin(), seq.as_list().end());
      return Value::list(std::move(out));
    }
    return unsupported();
  }
  if (!nums) {
    if (op == "%" && a.is_string())
      throw EvalError("printf-style '%' formatting of strings is not supported; use '~' or the format() of a filter");
    return unsupported();
  }
  if (op == "/") {
    if (b.as_float() == 0.0) throw EvalError("division by zero");
    return Value(a.as_float() / b.as_float());
  }
  if (op == "//") {
    if (ints) return Value(floordiv(a.as_int(), b.as_int()));
    if (b.as_float() == 0.0) throw EvalError("float floor division by zero");
    return Value(std::floor(a.as_float() / b.as_float()));
  }
  if (op == "%") {
    if (ints) return Value(pymod(a.as_int(), b.as_int()));
    if (b.as_float() == 0.0) throw EvalError("float modulo by zero");
    double m = std::fmod(a.as_float(), b.as_float());
    if (m != 0 && ((m < 0) != (b.as_float() < 0))) m += b.as_float();
    return Value(m);
  }
  if (op == "**") {
    if (ints && b.as_int() >= 0) {
      int64_t result = 1, base = a.as_int();
      for (int64_t k = b.as_int(); k > 0; --k) {
        if (__builtin_mul_overflow(result, base, &result)) throw EvalError("integer overflow in '**'");
        if (result == 0 || result == 1) break;
      }
      return Value(result);
    }
    return Value(std::pow(a.as_float(), b.as_float()));
  }
  return unsupported();
}

bool Evaluator::eval_compare(const Expr& e) {
  Value left = eval(*e.children[0]);
  for (size_t i = 0; i < e.ops.size(); ++i) {
    Value right = eval(*e.children[i + 1]);
    const std::string& op = e.ops[i];
    bool ok = false;
    if (op == "==") {
      ok = equals(left, right);
    } else if (op == "!=") {
      ok = !equals(left, right);
    } else if (op == "<") {
      ok = less(left, right);
    } else if (op == ">") {
      ok = less(right, left);
    } else if (op == "<=") {
      ok = !less(right, left);
    } else if (op == ">=") {
      ok = !less(left, right);
    } else if (op == "in") {
      ok = contains(right, left);
    } else {
      ok = !contains(right, left);
    }
    if (!ok) return false;
    left = std::move(right);
  }
  return true;
}

}  // namespace loom::tokenizer::jinja
