#include "loom/tokenizer/jinja/template.h"

#include <nlohmann/json.hpp>

#include "loom/core/error.h"

#include "loom/tokenizer/jinja/lexer.h"
#include "loom/tokenizer/jinja/parser.h"

namespace loom::tokenizer::jinja {

namespace {

Value from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null: return Value::none();
    case nlohmann::json::value_t::boolean: return Value(j.get<bool>());
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned: return Value(j.get<int64_t>());
    case nlohmann::json::value_t::number_float: return Value(j.get<double>());
    case nlohmann::json::value_t::string: return Value(j.get<std::string>());
    case nlohmann::json::value_t::array: {
      List items;
      for (const auto& x : j) items.push_back(from_json(x));
      return Value::list(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      Dict d;
      for (const auto& [k, v] : j.items()) d.set(Value(k), from_json(v));
      return Value::dict(std::move(d));
    }
    default: fail("[tokenizer] JSON value of type {} cannot be a template value", j.type_name());
  }
}

}  // namespace

Value parse_json_value(std::string_view json) {
  try {
    return from_json(nlohmann::ordered_json::parse(json));
  } catch (const nlohmann::json::exception& e) {
    fail("[tokenizer] not valid JSON for template values: {}", e.what());
  }
}

struct Template::Program {
  std::string name;
  TemplateOptions options;
  Body body;
};

Template Template::parse(std::string_view source, std::string name, const TemplateOptions& options) {
  auto p = std::make_shared<Program>();
  p->name = std::move(name);
  p->options = options;
  const std::vector<Token> tokens =
      lex(source, LexOptions{.trim_blocks = options.trim_blocks, .lstrip_blocks = options.lstrip_blocks}, p->name);
  p->body = jinja::parse(tokens, p->name);
  Template t;
  t.program_ = std::move(p);
  return t;
}

std::string Template::render(const Dict& variables) const {
  Evaluator ev(program_->name, program_->options.limits);
  return ev.render(program_->body, variables);
}

const std::string& Template::name() const { return program_->name; }

}  // namespace loom::tokenizer::jinja
