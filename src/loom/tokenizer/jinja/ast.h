// The syntax tree of a parsed template: expressions (Expr) and statements
// (Node). Internal to the interpreter: the parser builds it, the evaluator
// walks it; every node keeps its position for error messages.
//
//   Body body = parse(tokens, "t");   // {{ a ~ b }} -> Node{Output, expr: Expr{Binary "~", [Name a, Name b]}}
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "loom/tokenizer/jinja/lexer.h"
#include "loom/tokenizer/jinja/value.h"

namespace loom::tokenizer::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    Literal,  // value
    Name,     // name
    List,     // children
    Tuple,    // children (evaluated as a list)
    Dict,     // children: key, value, key, value, ...
    Attr,     // children[0].name
    Item,     // children[0][children[1]]
    Slice,    // children[0][children[1]:children[2]:children[3]], absent parts null
    Call,     // children[0](children[1..], kwargs)
    Filter,   // children[0] | name(children[1..], kwargs); children[0] null in a filter block
    Test,     // children[0] is [not] name(children[1..], kwargs)
    Unary,    // name ("-", "+", "not") children[0]
    Binary,   // children[0] name children[1]: + - * / // % ** ~ and or
    Compare,  // children[0] ops[0] children[1] ops[1] children[2] ... (== != < <= > >= in notin)
    Cond,     // children[0] if children[1] else children[2] (null: undefined)
  };
  Kind kind = Kind::Literal;
  Pos pos;
  Value value;
  std::string name;
  std::vector<ExprPtr> children;
  std::vector<std::string> ops;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  bool negated = false;
};

struct Node;
using Body = std::vector<std::unique_ptr<Node>>;

struct Node {
  enum class Kind {
    Text,         // text
    Output,       // {{ expr }}
    If,           // branches (a null condition is the else branch)
    For,          // for targets in expr [if condition]: body, else_body
    Set,          // set targets = expr (attr_target: targets = {namespace, attribute})
    SetBlock,     // set targets[0]: body captured as a string
    Macro,        // macro name(params): body
    Break,
    Continue,
    FilterBlock,  // filter expr (a Filter chain whose innermost input is null): body
    Block,        // body rendered in place ({% generation %})
  };
  Kind kind = Kind::Text;
  Pos pos;
  std::string text;
  ExprPtr expr;
  ExprPtr condition;
  std::vector<std::pair<ExprPtr, Body>> branches;
  std::vector<std::string> targets;
  bool attr_target = false;
  Body body, else_body;
  std::string name;
  std::vector<std::pair<std::string, ExprPtr>> params;  // default value may be null
};

// Names the evaluator knows; the parser rejects unknown filters and tests
// up front, as Jinja2 does when it compiles a template.
bool is_known_filter(std::string_view name);
bool is_known_test(std::string_view name);

}  // namespace loom::tokenizer::jinja
