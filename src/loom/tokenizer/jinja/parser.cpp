#include "loom/tokenizer/jinja/parser.h"

#include <fmt/format.h>

#include <algorithm>
#include <initializer_list>

namespace loom::tokenizer::jinja {

namespace {

std::string describe(const Token& t) {
  switch (t.type) {
    case TokenType::Text: return "text";
    case TokenType::VarBegin: return "'{{'";
    case TokenType::VarEnd: return "'}}'";
    case TokenType::BlockBegin: return "'{%'";
    case TokenType::BlockEnd: return "'%}'";
    case TokenType::Name: return "'" + t.text + "'";
    case TokenType::String: return "a string";
    case TokenType::Int:
    case TokenType::Float: return "a number";
    case TokenType::Op: return "'" + t.text + "'";
    case TokenType::Eof: return "the end of the template";
  }
  return "?";
}

class Parser {
 public:
  Parser(const std::vector<Token>& tokens, std::string_view name) : t_(tokens), name_(name) {}

  Body program() {
    Body body = parse_body({});
    return body;
  }

 private:
  // ---- token helpers ----
  const Token& cur() const { return t_[i_]; }
  const Token& peek(size_t k = 1) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  void next() {
    if (i_ + 1 < t_.size()) ++i_;
  }
  bool is_op(std::string_view op) const { return cur().type == TokenType::Op && cur().text == op; }
  bool is_name(std::string_view n) const { return cur().type == TokenType::Name && cur().text == n; }
  bool skip_op(std::string_view op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(std::string_view n) {
    if (!is_name(n)) return false;
    next();
    return true;
  }
  [[noreturn]] void error(const Token& at, const std::string& message) const { fail_at(name_, at.pos, message); }
  void expect_op(std::string_view op) {
    if (!skip_op(op)) error(cur(), fmt::format("expected '{}', got {}", op, describe(cur())));
  }
  std::string expect_name() {
    if (cur().type != TokenType::Name) error(cur(), fmt::format("expected a name, got {}", describe(cur())));
    std::string n = cur().text;
    next();
    return n;
  }
  void expect_block_end(std::string_view tag) {
    if (cur().type != TokenType::BlockEnd)
      error(cur(), fmt::format("expected '%}}' to end the '{}' tag, got {}", tag, describe(cur())));
    next();
  }

  // Guards recursion depth for both statements and expressions.
  struct Deeper {
    explicit Deeper(Parser& p) : p_(p) {
      if (++p_.depth_ > kMaxParseDepth)
        p_.error(p_.cur(), fmt::format("the template nests deeper than {} levels", kMaxParseDepth));
    }
    ~Deeper() { --p_.depth_; }
    Parser& p_;
  };

  static ExprPtr make(Expr::Kind kind, Pos pos) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->pos = pos;
    return e;
  }

  // ---- statements ----

  // Statements up to (not including) a tag whose name is in `ends`; at the
  // end of the template if `ends` is empty.
  Body parse_body(std::initializer_list<std::string_view> ends, const Token* opened_by = nullptr,
                  std::string_view opened_tag = {}) {
    Deeper guard(*this);
    Body body;
    for (;;) {
      const Token& tok = cur();
      switch (tok.type) {
        case TokenType::Eof:
          if (ends.size() == 0) return body;
          error(*opened_by, fmt::format("this '{{% {} %}}' is never closed: add '{{% {} %}}'", opened_tag,
                                        *(ends.end() - 1)));
        case TokenType::Text: {
          auto n = std::make_unique<Node>();
          n->kind = Node::Kind::Text;
          n->pos = tok.pos;
          n->text = tok.text;
          body.push_back(std::move(n));
          next();
          break;
        }
        case TokenType::VarBegin: {
          auto n = std::make_unique<Node>();
          n->kind = Node::Kind::Output;
          n->pos = tok.pos;
          next();
          n->expr = parse_tuple(true);
          if (cur().type != TokenType::VarEnd) error(cur(), fmt::format("expected '}}}}', got {}", describe(cur())));
          next();
          body.push_back(std::move(n));
          break;
        }
        case TokenType::BlockBegin: {
          const Token& tag = peek();
          if (tag.type != TokenType::Name) error(tag, fmt::format("expected a tag name after '{{%', got {}", describe(tag)));
          if (std::find(ends.begin(), ends.end(), tag.text) != ends.end()) return body;
          body.push_back(parse_statement(ends, opened_tag));
          break;
        }
        default: error(tok, fmt::format("unexpected {}", describe(tok)));
      }
    }
  }

  std::unique_ptr<Node> parse_statement(std::initializer_list<std::string_view> ends, std::string_view inside) {
    const Token& begin = cur();
    next();
    const Token& tag = cur();
    const std::string& n = tag.text;
    auto node = std::make_unique<Node>();
    node->pos = begin.pos;
    if (n == "if") return parse_if(std::move(node), begin);
    if (n == "for") return parse_for(std::move(node), begin);
    if (n == "set") return parse_set(std::move(node), begin);
    if (n == "macro") return parse_macro(std::move(node), begin);
    if (n == "filter") return parse_filter_block(std::move(node), begin);
    if (n == "generation") {
      next();
      expect_block_end(n);
      node->kind = Node::Kind::Block;
      node->body = parse_body({"endgeneration"}, &begin, "generation");
      close("endgeneration");
      return node;
    }
    if (n == "break" || n == "continue") {
      if (loops_ == 0) error(tag, fmt::format("'{{% {} %}}' outside a for loop", n));
      node->kind = n == "break" ? Node::Kind::Break : Node::Kind::Continue;
      next();
      expect_block_end(n);
      return node;
    }
    static constexpr std::string_view kUnsupported[] = {"include", "import", "from", "extends", "block", "call",
                                                        "with", "autoescape", "do", "trans"};
    if (std::find(std::begin(kUnsupported), std::end(kUnsupported), n) != std::end(kUnsupported))
      error(tag, fmt::format("the '{{% {} %}}' tag is not supported by loom's template interpreter; use a built-in "
                             "chat format (--chat-template NAME) instead",
                             n));
    std::string msg = fmt::format("unknown tag '{}'", n);
    if (ends.size() > 0) {
      std::string wanted;
      for (std::string_view e : ends) wanted += (wanted.empty() ? "'" : " or '") + std::string(e) + "'";
      msg += fmt::format("; the innermost open block is '{}', which expects {}", inside, wanted);
    }
    error(tag, msg);
  }

  // Consumes "{% name %}".
  void close(std::string_view name) {
    next();  // BlockBegin
    next();  // the name
    expect_block_end(name);
  }

  std::unique_ptr<Node> parse_if(std::unique_ptr<Node> node, const Token& begin) {
    node->kind = Node::Kind::If;
    next();  // "if"
    ExprPtr cond = parse_tuple(true);
    expect_block_end("if");
    for (;;) {
      Body body = parse_body({"elif", "else", "endif"}, &begin, "if");
      node->branches.emplace_back(std::move(cond), std::move(body));
      next();  // BlockBegin
      const std::string which = cur().text;
      next();
      if (which == "elif") {
        cond = parse_tuple(true);
        expect_block_end("elif");
      } else if (which == "else") {
        expect_block_end("else");
        node->branches.emplace_back(nullptr, parse_body({"endif"}, &begin, "if"));
        close("endif");
        return node;
      } else {
        expect_block_end("endif");
        return node;
      }
    }
  }

  std::vector<std::string> parse_targets(std::string_view before) {
    std::vector<std::string> names;
    const bool parens = skip_op("(");
    do {
      if (parens && is_op(")")) break;
      names.push_back(expect_name());
    } while (skip_op(","));
    if (parens) expect_op(")");
    if (!is_name(before) && !is_op(before))
      error(cur(), fmt::format("expected '{}' after the loop variable, got {}", before, describe(cur())));
    return names;
  }

  std::unique_ptr<Node> parse_for(std::unique_ptr<Node> node, const Token& begin) {
    node->kind = Node::Kind::For;
    next();  // "for"
    node->targets = parse_targets("in");
    next();  // "in"
    node->expr = parse_tuple(false);
    if (skip_name("if")) node->condition = parse_expression(true);
    if (is_name("recursive")) error(cur(), "recursive for loops are not supported by loom's template interpreter");
    expect_block_end("for");
    ++loops_;
    node->body = parse_body({"else", "endfor"}, &begin, "for");
    --loops_;
    next();  // BlockBegin
    if (cur().text == "else") {
      next();
      expect_block_end("else");
      node->else_body = parse_body({"endfor"}, &begin, "for");
      next();
    }
    next();  // "endfor"
    expect_block_end("endfor");
    return node;
  }

  std::unique_ptr<Node> parse_set(std::unique_ptr<Node> node, const Token& begin) {
    next();  // "set"
    std::string first = expect_name();
    node->targets.push_back(first);
    if (skip_op(".")) {
      node->attr_target = true;
      node->targets.push_back(expect_name());
    } else {
      while (skip_op(",")) node->targets.push_back(expect_name());
    }
    if (skip_op("=")) {
      node->kind = Node::Kind::Set;
      node->expr = parse_tuple(true);
      expect_block_end("set");
      return node;
    }
    if (node->attr_target || node->targets.size() != 1)
      error(cur(), fmt::format("expected '=' in the 'set' tag, got {}", describe(cur())));
    expect_block_end("set");
    node->kind = Node::Kind::SetBlock;
    node->body = parse_body({"endset"}, &begin, "set");
    close("endset");
    return node;
  }

  std::unique_ptr<Node> parse_macro(std::unique_ptr<Node> node, const Token& begin) {
    node->kind = Node::Kind::Macro;
    next();  // "macro"
    node->name = expect_name();
    expect_op("(");
    while (!is_op(")")) {
      std::string param = expect_name();
      ExprPtr fallback;
      if (skip_op("=")) fallback = parse_expression(true);
      node->params.emplace_back(std::move(param), std::move(fallback));
      if (!skip_op(",")) break;
    }
    expect_op(")");
    expect_block_end("macro");
    const int loops = loops_;
    loops_ = 0;  // a macro body is not inside the caller's loop
    node->body = parse_body({"endmacro"}, &begin, "macro");
    loops_ = loops;
    close("endmacro");
    return node;
  }

  std::unique_ptr<Node> parse_filter_block(std::unique_ptr<Node> node, const Token& begin) {
    node->kind = Node::Kind::FilterBlock;
    next();  // "filter"
    ExprPtr chain;
    do {
      chain = parse_filter(std::move(chain));
    } while (skip_op("|"));
    node->expr = std::move(chain);
    expect_block_end("filter");
    node->body = parse_body({"endfilter"}, &begin, "filter");
    close("endfilter");
    return node;
  }

  // ---- expressions (Jinja2's precedence, loosest first) ----

  // Comma-separated expressions form a tuple.
  ExprPtr parse_tuple(bool with_condexpr) {
    const Pos pos = cur().pos;
    ExprPtr first = parse_expression(with_condexpr);
    if (!is_op(",")) return first;
    auto tuple = make(Expr::Kind::Tuple, pos);
    tuple->children.push_back(std::move(first));
    while (skip_op(",")) {
      if (cur().type == TokenType::VarEnd || cur().type == TokenType::BlockEnd || is_op(")")) break;
      tuple->children.push_back(parse_expression(with_condexpr));
    }
    return tuple;
  }

  ExprPtr parse_expression(bool with_condexpr) { return with_condexpr ? parse_condexpr() : parse_or(); }

  ExprPtr parse_condexpr() {
    Deeper guard(*this);
    ExprPtr expr = parse_or();
    while (is_name("if")) {
      const Pos pos = cur().pos;
      next();
      auto cond = make(Expr::Kind::Cond, pos);
      cond->children.push_back(std::move(expr));
      cond->children.push_back(parse_or());
      cond->children.push_back(skip_name("else") ? parse_condexpr() : nullptr);
      expr = std::move(cond);
    }
    return expr;
  }

  ExprPtr binary(const char* op, ExprPtr left, ExprPtr right, Pos pos) {
    auto e = make(Expr::Kind::Binary, pos);
    e->name = op;
    e->children.push_back(std::move(left));
    e->children.push_back(std::move(right));
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      const Pos pos = cur().pos;
      next();
      left = binary("or", std::move(left), parse_and(), pos);
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      const Pos pos = cur().pos;
      next();
      left = binary("and", std::move(left), parse_not(), pos);
    }
    return left;
  }

  ExprPtr parse_not() {
    Deeper guard(*this);
    if (!is_name("not")) return parse_compare();
    auto e = make(Expr::Kind::Unary, cur().pos);
    next();
    e->name = "not";
    e->children.push_back(parse_not());
    return e;
  }

  ExprPtr parse_compare() {
    const Pos pos = cur().pos;
    ExprPtr first = parse_math1();
    ExprPtr cmp;
    for (;;) {
      std::string op;
      if (cur().type == TokenType::Op &&
          (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == "<=" || cur().text == ">" ||
           cur().text == ">=")) {
        op = cur().text;
        next();
      } else if (is_name("in")) {
        op = "in";
        next();
      } else if (is_name("not") && peek().type == TokenType::Name && peek().text == "in") {
        op = "notin";
        next();
        next();
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(Expr::Kind::Compare, pos);
        cmp->children.push_back(std::move(first));
      }
      cmp->ops.push_back(op);
      cmp->children.push_back(parse_math1());
    }
    return cmp ? std::move(cmp) : std::move(first);
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& op = cur();
      next();
      left = binary(op.text == "+" ? "+" : "-", std::move(left), parse_concat(), op.pos);
    }
    return left;
  }

  ExprPtr parse_concat() {
    ExprPtr left = parse_math2();
    while (is_op("~")) {
      const Pos pos = cur().pos;
      next();
      left = binary("~", std::move(left), parse_math2(), pos);
    }
    return left;
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& op = cur();
      const char* name = op.text == "*" ? "*" : op.text == "/" ? "/" : op.text == "//" ? "//" : "%";
      next();
      left = binary(name, std::move(left), parse_pow(), op.pos);
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op("**")) {
      const Pos pos = cur().pos;
      next();
      left = binary("**", std::move(left), parse_unary(true), pos);
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    Deeper guard(*this);
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      node = make(Expr::Kind::Unary, cur().pos);
      node->name = cur().text;
      next();
      node->children.push_back(parse_unary(false));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    const Token& tok = cur();
    switch (tok.type) {
      case TokenType::Name: {
        auto e = make(Expr::Kind::Literal, tok.pos);
        if (tok.text == "true" || tok.text == "True") {
          e->value = Value(true);
        } else if (tok.text == "false" || tok.text == "False") {
          e->value = Value(false);
        } else if (tok.text == "none" || tok.text == "None") {
          e->value = Value::none();
        } else {
          e->kind = Expr::Kind::Name;
          e->name = tok.text;
        }
        next();
        return e;
      }
      case TokenType::String: {
        // Adjacent literals concatenate, as in Python.
        auto e = make(Expr::Kind::Literal, tok.pos);
        std::string s;
        while (cur().type == TokenType::String) {
          s += cur().text;
          next();
        }
        e->value = Value(std::move(s));
        return e;
      }
      case TokenType::Int:
      case TokenType::Float: {
        auto e = make(Expr::Kind::Literal, tok.pos);
        e->value = tok.type == TokenType::Int ? Value(tok.int_value) : Value(tok.float_value);
        next();
        return e;
      }
      case TokenType::Op:
        if (tok.text == "(") {
          next();
          if (skip_op(")")) return make(Expr::Kind::Tuple, tok.pos);
          ExprPtr inner = parse_tuple(true);
          expect_op(")");
          return inner;
        }
        if (tok.text == "[") {
          auto e = make(Expr::Kind::List, tok.pos);
          next();
          while (!is_op("]")) {
            e->children.push_back(parse_expression(true));
            if (!skip_op(",")) break;
          }
          expect_op("]");
          return e;
        }
        if (tok.text == "{") {
          auto e = make(Expr::Kind::Dict, tok.pos);
          next();
          while (!is_op("}")) {
            e->children.push_back(parse_expression(true));
            expect_op(":");
            e->children.push_back(parse_expression(true));
            if (!skip_op(",")) break;
          }
          expect_op("}");
          return e;
        }
        break;
      default: break;
    }
    error(tok, fmt::format("expected an expression, got {}", describe(tok)));
  }

  ExprPtr parse_postfix(ExprPtr node) {
    for (;;) {
      if (is_op(".")) {
        const Pos pos = cur().pos;
        next();
        if (cur().type == TokenType::Int) {  // x.0 is x[0]
          auto e = make(Expr::Kind::Item, pos);
          e->children.push_back(std::move(node));
          auto idx = make(Expr::Kind::Literal, cur().pos);
          idx->value = Value(cur().int_value);
          e->children.push_back(std::move(idx));
          next();
          node = std::move(e);
          continue;
        }
        auto e = make(Expr::Kind::Attr, pos);
        e->name = expect_name();
        e->children.push_back(std::move(node));
        node = std::move(e);
      } else if (is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    const Pos pos = cur().pos;
    next();  // "["
    ExprPtr parts[3];
    bool slice = false;
    if (!is_op(":")) parts[0] = parse_expression(true);
    if (skip_op(":")) {
      slice = true;
      if (!is_op("]") && !is_op(":")) parts[1] = parse_expression(true);
      if (skip_op(":") && !is_op("]")) parts[2] = parse_expression(true);
    }
    expect_op("]");
    auto e = make(slice ? Expr::Kind::Slice : Expr::Kind::Item, pos);
    e->children.push_back(std::move(node));
    if (slice) {
      for (auto& p : parts) e->children.push_back(std::move(p));
    } else {
      e->children.push_back(std::move(parts[0]));
    }
    return e;
  }

  void parse_args(Expr& e) {
    expect_op("(");
    while (!is_op(")")) {
      if (is_op("*") || is_op("**")) error(cur(), "*args and **kwargs in calls are not supported");
      if (cur().type == TokenType::Name && peek().type == TokenType::Op && peek().text == "=") {
        std::string key = cur().text;
        next();
        next();
        e.kwargs.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (!e.kwargs.empty()) error(cur(), "a positional argument follows a keyword argument");
        e.children.push_back(parse_expression(true));
      }
      if (!skip_op(",")) break;
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto e = make(Expr::Kind::Call, callee->pos);  // errors point at what is called
    e->children.push_back(std::move(callee));
    parse_args(*e);
    return e;
  }

  ExprPtr parse_filter(ExprPtr input) {
    const Token& tok = cur();
    const std::string name = expect_name();
    if (!is_known_filter(name)) error(tok, fmt::format("no filter named '{}'", name));
    auto e = make(Expr::Kind::Filter, tok.pos);
    e->name = name;
    e->children.push_back(std::move(input));
    if (is_op("(")) parse_args(*e);
    return e;
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    for (;;) {
      if (skip_op("|")) {
        node = parse_filter(std::move(node));
      } else if (is_name("is")) {
        node = parse_test(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_test(ExprPtr input) {
    auto e = make(Expr::Kind::Test, cur().pos);
    next();  // "is"
    e->negated = skip_name("not");
    const Token& tok = cur();
    e->name = expect_name();
    if (!is_known_test(e->name)) error(tok, fmt::format("no test named '{}'", e->name));
    e->children.push_back(std::move(input));
    if (is_op("(")) {
      parse_args(*e);
    } else if ((cur().type == TokenType::Name || cur().type == TokenType::String || cur().type == TokenType::Int ||
                cur().type == TokenType::Float || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      // "x is divisibleby 3", "x is sameas false": one argument without parentheses.
      if (is_name("is")) error(cur(), "tests cannot be chained with 'is'");
      e->children.push_back(parse_postfix(parse_primary()));
    }
    return e;
  }

  const std::vector<Token>& t_;
  std::string name_;
  size_t i_ = 0;
  int depth_ = 0;
  int loops_ = 0;
};

}  // namespace

Body parse(const std::vector<Token>& tokens, std::string_view name) { return Parser(tokens, name).program(); }

}  // namespace loom::tokenizer::jinja
