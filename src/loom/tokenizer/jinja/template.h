// loom's own interpreter for the Jinja subset chat templates are written in
// (no Jinja engine is packaged for C++). It renders as Hugging Face
// transformers does: trim_blocks and lstrip_blocks on, tojson without HTML
// escaping, raise_exception() and strftime_now() available, loop controls
// (break/continue) enabled. Errors are loom::Errors naming the line and
// column; runaway templates stop at the limits instead of hanging.
//
//   auto t = jinja::Template::parse("{% for m in messages %}{{ m.role }};{% endfor %}", "example");
//   jinja::Dict vars;
//   vars.set("messages", jinja::Value::list({...}));
//   std::string out = t.render(vars);
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "loom/tokenizer/jinja/evaluator.h"
#include "loom/tokenizer/jinja/value.h"

namespace loom::tokenizer::jinja {

struct TemplateOptions {
  bool trim_blocks = true;    // drop the first newline after a block tag
  bool lstrip_blocks = true;  // drop spaces and tabs before a block tag alone on its line
  Limits limits;
};

// A JSON document as template values (objects keep their key order), e.g.
// for variables written inline: parse_json_value(R"({"messages": []})").
Value parse_json_value(std::string_view json);

class Template {
 public:
  // Parses `source`; syntax errors throw, naming `name`, the line and the column.
  static Template parse(std::string_view source, std::string name = "template", const TemplateOptions& options = {});

  std::string render(const Dict& variables) const;
  const std::string& name() const;

 private:
  struct Program;
  std::shared_ptr<const Program> program_;
};

}  // namespace loom::tokenizer::jinja
