// jinja::Value: what a chat template computes with. Values follow Python's
// rules as Jinja2 applies them (str() of a list is its repr, 1 == 1.0 == True,
// empty containers are false, a missing key is "undefined" and prints as ""),
// so a template renders here exactly as in Hugging Face transformers.
//
//   Dict m;  m.set("role", Value("user"));
//   Value v = Value::list({Value::dict(m)});
//   std::string s = v.str();   // "[{'role': 'user'}]"
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace loom::tokenizer::jinja {

class Value;
using List = std::vector<Value>;
struct Dict;
struct Namespace;
struct Callable;

// A Python-level error (TypeError, UndefinedError, ...) raised while
// evaluating; the evaluator adds the template position and turns it into a
// loom::Error. Never leaves the interpreter.
class EvalError : public std::runtime_error {
 public:
  explicit EvalError(const std::string& what) : std::runtime_error(what) {}
};

class Value {
 public:
  enum class Kind { Undefined, None, Bool, Int, Float, String, List, Dict, Namespace, Callable };

  Value() = default;  // undefined
  Value(bool b) : v_(b) {}
  Value(int v) : v_(int64_t(v)) {}
  Value(int64_t v) : v_(v) {}
  Value(double v) : v_(v) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(std::string_view s) : v_(std::string(s)) {}
  Value(const char* s) : v_(std::string(s)) {}

  // `why` explains what is undefined, for the error raised when it is used:
  // "'x' is undefined", "'dict object' has no attribute 'tools'".
  static Value undefined(std::string why);
  static Value none();
  static Value list(List items);
  static Value tuple(List items);  // a list that prints as (a, b) and differs from [a, b] under ==
  static Value dict(Dict d);
  static Value ns(std::shared_ptr<Namespace> n);
  static Value callable(std::string name, std::function<Value(struct CallArgs&)> fn);

  Kind kind() const { return Kind(v_.index()); }
  bool is_undefined() const { return kind() == Kind::Undefined; }
  bool is_none() const { return kind() == Kind::None; }
  bool is_bool() const { return kind() == Kind::Bool; }
  bool is_int() const { return kind() == Kind::Int; }
  bool is_float() const { return kind() == Kind::Float; }
  bool is_number() const { return is_int() || is_float() || is_bool(); }  // Python: bool is an int
  bool is_string() const { return kind() == Kind::String; }
  bool is_list() const { return kind() == Kind::List; }  // lists and tuples
  bool is_tuple() const { return tuple_; }
  bool is_dict() const { return kind() == Kind::Dict; }
  bool is_namespace() const { return kind() == Kind::Namespace; }
  bool is_callable() const { return kind() == Kind::Callable; }

  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const;    // Int or Bool
  double as_float() const;   // Int, Bool or Float
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const List& as_list() const { return *std::get<std::shared_ptr<const List>>(v_); }
  const Dict& as_dict() const { return *std::get<std::shared_ptr<const Dict>>(v_); }
  Namespace& as_namespace() const { return *std::get<std::shared_ptr<Namespace>>(v_); }
  const Callable& as_callable() const { return *std::get<std::shared_ptr<const Callable>>(v_); }
  const std::string& undefined_reason() const { return std::get<Undef>(v_).why; }

  bool truthy() const;             // Python bool()
  std::string str() const;         // Python str(); undefined gives ""
  std::string repr() const;        // Python repr()
  std::string type_name() const;   // "str", "int", "list", "dict", "NoneType", ...
  // Throws the UndefinedError of an undefined value (for operations that
  // may not use one); does nothing otherwise.
  void require_defined() const;

 private:
  struct Undef {
    std::string why;
  };
  struct None {};
  std::variant<Undef, None, bool, int64_t, double, std::string, std::shared_ptr<const List>, std::shared_ptr<const Dict>,
               std::shared_ptr<Namespace>, std::shared_ptr<const Callable>>
      v_;
  bool tuple_ = false;
};

// An insertion-ordered mapping (Python 3.7+ dicts keep insertion order, and
// tojson output depends on it). Small, so lookups are linear.
struct Dict {
  std::vector<std::pair<Value, Value>> items;
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  const Value* find(const std::string& key) const { return find(std::string_view(key)); }
  const Value* find(const char* key) const { return find(std::string_view(key)); }
  void set(Value key, Value value);  // replaces in place, or appends
};

// The mutable object namespace() returns: the one thing a template may
// change after creating it ({% set ns.found = true %} inside a loop).
struct Namespace {
  Dict attrs;
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> named;
  // Argument `index` by position, or by `name`; `fallback` if absent.
  Value get(size_t index, std::string_view name, const Value& fallback) const;
  // Throws if more than `max_positional` positional or any other named argument was given.
  void check(std::string_view function, size_t max_positional, std::initializer_list<std::string_view> names) const;
};

struct Callable {
  std::string name;
  std::function<Value(CallArgs&)> fn;
};

// Python ==, with 1 == 1.0 == True and deep comparison of containers.
bool equals(const Value& a, const Value& b);
// Python <; throws EvalError for values of kinds Python cannot order.
bool less(const Value& a, const Value& b);
// Python json.dumps(v, ensure_ascii=False, indent=indent) as transformers'
// tojson filter calls it; indent < 0 means none (", " and ": " separators).
std::string to_json(const Value& v, int indent = -1, bool sort_keys = false);
// Python repr() of a float ("1.0", "1e-05", "inf").
std::string float_repr(double d);

}  // namespace loom::tokenizer::jinja
