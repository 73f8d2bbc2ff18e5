// Bad templates give loom::Errors that name the line and column, and runaway
// templates stop at the interpreter's limits instead of hanging.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "loom/core/error.h"
#include "loom/tokenizer/jinja/template.h"

namespace loom::tokenizer::jinja {
namespace {

std::string error_of(std::string_view source, std::string_view vars_json = "{}", const TemplateOptions& opt = {}) {
  try {
    Template::parse(source, "bad.jinja", opt).render(parse_json_value(vars_json).as_dict());
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

bool has(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }

TEST(JinjaErrors, SyntaxErrorsNameLineAndColumn) {
  // "ab {{ x + }}": the "}}" where an operand should be is at line 2, column 11.
  std::string e = error_of("line one\nab {{ x + }}");
  EXPECT_TRUE(has(e, "[tokenizer] chat template bad.jinja, line 2, column 11")) << e;
  EXPECT_TRUE(has(e, "expected an expression")) << e;

  e = error_of("{% if x %}\nno end");
  EXPECT_TRUE(has(e, "line 1, column 1")) << e;
  EXPECT_TRUE(has(e, "never closed")) << e;
  EXPECT_TRUE(has(e, "endif")) << e;

  e = error_of("{{ 'open");
  EXPECT_TRUE(has(e, "line 1, column 4")) << e;
  EXPECT_TRUE(has(e, "unterminated string")) << e;

  e = error_of("a\n  {% for x in xs %}{% endif %}");
  EXPECT_TRUE(has(e, "line 2")) << e;
  EXPECT_TRUE(has(e, "endif")) << e;

  EXPECT_TRUE(has(error_of("{{ x | nosuchfilter }}"), "no filter named 'nosuchfilter'"));
  EXPECT_TRUE(has(error_of("{{ x is nosuchtest }}"), "no test named 'nosuchtest'"));
  EXPECT_TRUE(has(error_of("{% include 'other.jinja' %}"), "not supported"));
  EXPECT_TRUE(has(error_of("{% break %}"), "outside a for loop"));
  EXPECT_TRUE(has(error_of("{{ (1 }}"), "unexpected '}'"));
  EXPECT_TRUE(has(error_of("{# never closed"), "missing end of comment"));
}

TEST(JinjaErrors, RuntimeErrorsNameWhereTheyHappen) {
  std::string e = error_of("ok\n{{ 1 + 'a' }}");
  EXPECT_TRUE(has(e, "line 2, column 6")) << e;  // the '+'
  EXPECT_TRUE(has(e, "unsupported operand type(s) for +: 'int' and 'str'")) << e;

  e = error_of("{{ missing.attr }}");
  EXPECT_TRUE(has(e, "'missing' is undefined")) << e;
  e = error_of("{{ m.tools.first }}", R"({"m": {}})");
  EXPECT_TRUE(has(e, "'dict object' has no attribute 'tools'")) << e;
  EXPECT_TRUE(has(error_of("{{ 'a' + x }}"), "'x' is undefined"));
  EXPECT_TRUE(has(error_of("{{ 1 // 0 }}"), "division or modulo by zero"));
  EXPECT_TRUE(has(error_of("{{ none|length }}"), "has no len()"));
  EXPECT_TRUE(has(error_of("{% set x = 1 %}{% set x.y = 2 %}"), "namespace"));
  EXPECT_TRUE(has(error_of("{{ 5() }}"), "not callable"));
}

TEST(JinjaErrors, RaiseExceptionBecomesAnError) {
  const std::string e = error_of("{% if true %}{{ raise_exception('Roles must alternate') }}{% endif %}");
  EXPECT_TRUE(has(e, "Roles must alternate")) << e;
  EXPECT_TRUE(has(e, "line 1, column 17")) << e;  // the call
}

TEST(JinjaErrors, RunawayTemplatesStopAtTheLimits) {
  TemplateOptions small;
  small.limits.max_iterations = 10'000;
  small.limits.max_output_bytes = 1 << 16;
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(has(error_of("{% for i in range(100000000) %}x{% endfor %}", "{}", small), "loop iterations"));
  EXPECT_TRUE(has(error_of("{% for i in range(100) %}{% for j in range(100) %}{% for k in range(100) %}{% endfor %}"
                           "{% endfor %}{% endfor %}",
                           "{}", small),
                  "loop iterations"));
  EXPECT_TRUE(has(error_of("{{ 'x' * 1000000000 }}", "{}", small), "bytes"));
  EXPECT_TRUE(has(error_of("{% set s = namespace(v='ab') %}{% for i in range(40) %}{% set s.v = s.v ~ s.v %}"
                           "{% endfor %}",
                           "{}", small),
                  "bytes"));
  EXPECT_TRUE(has(error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "{}", small), "deep"));
  // Nesting deeper than the parser allows is refused, not a stack overflow.
  EXPECT_TRUE(has(error_of("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}"), "nests deeper"));
  std::string nested;
  for (int i = 0; i < 1000; ++i) nested += "{% if true %}";
  EXPECT_TRUE(has(error_of(nested), "nests deeper"));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
}

TEST(JinjaErrors, DefaultLimitsAllowRealTemplates) {
  // 1000 messages through a loop is ordinary work.
  std::string vars = R"({"messages": [)";
  for (int i = 0; i < 1000; ++i) vars += std::string(i ? "," : "") + R"({"role": "user", "content": "hi"})";
  vars += "]}";
  EXPECT_EQ(error_of("{% for m in messages %}{{ m.role }}{% endfor %}", vars), "(no error)");
}

}  // namespace
}  // namespace loom::tokenizer::jinja
