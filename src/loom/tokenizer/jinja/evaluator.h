// The evaluator: walks a parsed template with a set of variables and writes
// the output. It enforces the limits that keep a runaway template from
// hanging or exhausting memory (output size, loop iterations, macro call
// depth). Internal to the interpreter; template.h is the public face.
//
//   Evaluator ev("chatml", Limits{});
//   std::string out = ev.render(parse(lex(source, {}, "chatml"), "chatml"), variables);
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "loom/tokenizer/jinja/ast.h"
#include "loom/tokenizer/jinja/value.h"

namespace loom::tokenizer::jinja {

struct Limits {
  size_t max_output_bytes = size_t(16) << 20;  // of the output and of any string built on the way
  int64_t max_iterations = 1'000'000;          // loop iterations and range() items, per render
  int max_call_depth = 64;                     // nested macro calls
};

class Evaluator {
 public:
  Evaluator(std::string_view name, const Limits& limits);
  std::string render(const Body& program, const Dict& variables);

  Value eval(const Expr& e);
  // Calls a callable value (a macro, a global function, a bound method).
  Value call(const Value& fn, CallArgs& args);
  // Jinja's getattr(obj, name) / getitem(obj, key): a missing member is an
  // undefined value, never an error (only using that value may fail).
  Value get_attr(const Value& obj, const std::string& name);
  Value get_item(const Value& obj, const Value& key);

  // Throws when a string or list of `bytes` would exceed the output limit.
  void check_size(size_t bytes) const;
  // Counts `n` units of work against the iteration limit.
  void spend(int64_t n);
  // Registers a namespace() object so that it is emptied when the render
  // ends: a namespace can hold itself ({% set ns.me = ns %}), and that
  // reference cycle must not outlive the render.
  void track(const std::shared_ptr<Namespace>& ns) { namespaces_.push_back(ns); }
  ~Evaluator();

 private:
  struct Scope {
    std::shared_ptr<Scope> parent;
    std::unordered_map<std::string, Value> vars;
    const Value* find(const std::string& name) const;
  };
  enum class Flow { Normal, Break, Continue };

  Flow render_body(const Body& body);
  Flow render_node(const Node& n);
  void render_for(const Node& n);
  void render_set(const Node& n, Value value);
  Value define_macro(const Node& n);
  std::string capture(const Body& body);
  void write(std::string_view s);

  Value eval_inner(const Expr& e);
  Value eval_filter(const Expr& e, const Value* block_input);
  Value eval_call(const Expr& e);
  Value eval_binary(const Expr& e);
  bool eval_compare(const Expr& e);
  Value lookup(const std::string& name) const;
  CallArgs eval_args(const Expr& e, size_t first_child);

  std::string name_;
  Limits limits_;
  std::shared_ptr<Scope> scope_;
  std::string* out_ = nullptr;
  // Scopes that define macros. A macro refers to its scope weakly (the scope
  // holds the macro, so a strong reference would be a cycle); these keep the
  // scopes alive for the render.
  std::vector<std::shared_ptr<Scope>> macro_scopes_;
  std::vector<std::weak_ptr<Namespace>> namespaces_;
  int64_t spent_ = 0;
  int call_depth_ = 0;
};

// ---- built-ins (builtins.cpp, methods.cpp) ----
Value apply_filter(Evaluator& ev, const std::string& name, const Value& input, CallArgs& args);
bool apply_test(Evaluator& ev, const std::string& name, const Value& value, CallArgs& args);
// Methods of str and dict values ("x.strip()", "d.items()"); nullopt if `obj` has no method `name`.
bool has_method(const Value& obj, std::string_view name);
Value call_method(Evaluator& ev, const Value& obj, const std::string& name, CallArgs& args);
// range, namespace, dict, raise_exception, strftime_now.
void add_globals(Evaluator& ev, std::unordered_map<std::string, Value>& globals);
// Iterating a value as Python does (a dict gives its keys, a string its characters).
List iterate(const Value& v);
// Python's `item in container`.
bool contains(const Value& container, const Value& item);

}  // namespace loom::tokenizer::jinja
