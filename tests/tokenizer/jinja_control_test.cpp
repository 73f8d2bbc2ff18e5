// Statements and whitespace control of the chat-template interpreter, with
// Hugging Face's settings (trim_blocks and lstrip_blocks on). Expected output
// follows Jinja2's documented rules, worked out by hand in the comments.
#include <gtest/gtest.h>

#include <string>

#include "loom/tokenizer/jinja/template.h"

namespace loom::tokenizer::jinja {
namespace {

std::string render(std::string_view source, std::string_view vars_json = "{}") {
  return Template::parse(source, "test").render(parse_json_value(vars_json).as_dict());
}

TEST(JinjaControl, IfElifElse) {
  const char* t = "{% if n == 1 %}one{% elif n == 2 %}two{% else %}many{% endif %}";
  EXPECT_EQ(render(t, R"({"n": 1})"), "one");
  EXPECT_EQ(render(t, R"({"n": 2})"), "two");
  EXPECT_EQ(render(t, R"({"n": 7})"), "many");
  EXPECT_EQ(render("{% if x %}set{% endif %}|{% if not x %}unset{% endif %}"), "|unset");  // undefined is false
}

TEST(JinjaControl, ForLoopVariables) {
  const char* vars = R"({"xs": ["a", "b", "c"]})";
  EXPECT_EQ(render("{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ x }}{% if loop.first %}F{% endif %}"
                   "{% if loop.last %}L{% endif %}/{{ loop.length }} {% endfor %}",
                   vars),
            "10aF/3 21b/3 32cL/3 ");
  EXPECT_EQ(render("{% for x in xs %}{{ loop.revindex }}{{ loop.cycle('o', 'e') }}{{ loop.previtem|default('-') }} "
                   "{% endfor %}",
                   vars),
            "3o- 2ea 1ob ");
  // The filter runs before the loop, so index and length count only kept items.
  EXPECT_EQ(render("{% for x in xs if x != 'b' %}{{ loop.index }}{{ x }}{{ loop.length }} {% endfor %}", vars),
            "1a2 2c2 ");
  EXPECT_EQ(render("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for x in xs if x == 'z' %}x{% else %}none kept{% endfor %}", vars), "none kept");
  EXPECT_EQ(render("{% for c in 'hé' %}[{{ c }}]{% endfor %}{% for k in {'a': 1, 'b': 2} %}{{ k }}{% endfor %}"),
            "[h][é]ab");
}

TEST(JinjaControl, BreakAndContinue) {
  EXPECT_EQ(render("{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}"
                   "{% endif %}{{ i }}{% endfor %}"),
            "0134");
  EXPECT_EQ(render("{{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ range(3, 0, -1)|list }}"),
            "[0, 1, 2] [1, 3, 5] [3, 2, 1]");
}

TEST(JinjaControl, SetScopingAndNamespace) {
  // A set inside a loop is local to that iteration: the outer x stays 1 and
  // each iteration starts from it (1+0, 1+1, 1+2).
  EXPECT_EQ(render("{% set x = 1 %}{% for i in range(3) %}{% set x = x + i %}{{ x }}{% endfor %}{{ x }}"), "1231");
  // A set inside an if changes the enclosing scope.
  EXPECT_EQ(render("{% set x = 1 %}{% if true %}{% set x = 2 %}{% endif %}{{ x }}"), "2");
  // namespace() is how a loop reports out.
  EXPECT_EQ(render("{% set ns = namespace(found=false, n=0) %}{% for i in range(4) %}{% if i is odd %}"
                   "{% set ns.found = true %}{% set ns.n = ns.n + 1 %}{% endif %}{% endfor %}{{ ns.found }} {{ ns.n }}"),
            "True 2");
  EXPECT_EQ(render("{% set a, b = 1, 2 %}{{ a }}{{ b }}"), "12");
  EXPECT_EQ(render("{% set content %}captured {{ 1 + 1 }}{% endset %}[{{ content }}]"), "[captured 2]");
  EXPECT_EQ(render("{% set messages = messages[1:] %}{{ messages|length }}", R"({"messages": [1, 2, 3]})"), "2");
}

TEST(JinjaControl, Macros) {
  const char* t =
      "{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}"
      "{{ greet('Bob') }} {{ greet('Al', greeting='Hi') }} {{ greet(name='Zoe') }}";
  EXPECT_EQ(render(t), "Hello, Bob! Hi, Al! Hello, Zoe!");
  // Macros see the template's variables and may call each other.
  EXPECT_EQ(render("{% macro b() %}[{{ who }}]{% endmacro %}{% macro a() %}{{ b() }}{{ b() }}{% endmacro %}{{ a() }}",
                   R"({"who": "x"})"),
            "[x][x]");
}

TEST(JinjaControl, FilterBlockRawAndGeneration) {
  EXPECT_EQ(render("{% filter upper %}shout {{ 'me' }}{% endfilter %}"), "SHOUT ME");
  EXPECT_EQ(render("{% raw %}{{ not evaluated }}{% endraw %}"), "{{ not evaluated }}");
  EXPECT_EQ(render("{% generation %}answer{% endgeneration %}"), "answer");  // transformers' AssistantTracker tag
}

TEST(JinjaWhitespace, MinusStripsAllWhitespaceOnItsSide) {
  EXPECT_EQ(render("a  \n  {{- 'b' -}}  \n  c"), "abc");
  EXPECT_EQ(render("a\n\n{%- if true -%}\n\n  b  \n{%- endif %}"), "ab");
  EXPECT_EQ(render("a {#- note -#} b"), "ab");
}

TEST(JinjaWhitespace, TrimBlocksEatsOneNewlineAfterABlockTag) {
  // "{% if %}\n" loses its newline; "{{ }}\n" keeps it (trim_blocks is for blocks).
  EXPECT_EQ(render("{% if true %}\nx\n{% endif %}\n{{ 'y' }}\nz"), "x\ny\nz");
  EXPECT_EQ(render("{% if true %}\n\nx{% endif %}"), "\nx");  // only one newline goes
  EXPECT_EQ(render("{# comment #}\nx"), "x");                 // comments are trimmed too
  EXPECT_EQ(render("{% if true +%}\nx{% endif %}"), "\nx");   // "+%}" keeps it
}

TEST(JinjaWhitespace, LstripBlocksDropsIndentationBeforeABlockTag) {
  // Spaces between a line start and a block tag go; spaces before "{{" stay.
  EXPECT_EQ(render("  {% if true %}\n    yes\n  {% endif %}\nafter"), "    yes\nafter");
  EXPECT_EQ(render("  {{ 'v' }}\n"), "  v");  // and the template's last newline is dropped (keep_trailing_newline off)
  EXPECT_EQ(render("x  {% if true %}y{% endif %}"), "x  y");  // not at a line start: kept
  EXPECT_EQ(render("  {%+ if true %}y{% endif %}"), "  y");   // "{%+" keeps it
}

TEST(JinjaWhitespace, IndentedTemplateRendersCompactly) {
  // The shape of most chat templates: one tag per line, indented, "{%-" everywhere.
  const char* t = R"({%- for m in messages %}
    {%- if m.role == 'user' %}
        {{- '<u>' + m.content }}
    {%- else %}
        {{- '<a>' + m.content }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<a>' }}
{%- endif %}
)";
  EXPECT_EQ(render(t, R"({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
                          "add_generation_prompt": true})"),
            "<u>hi<a>yo<a>");
}

TEST(JinjaWhitespace, NewlinesAreNormalised) {
  EXPECT_EQ(render("a\r\nb\rc"), "a\nb\nc");
}

}  // namespace
}  // namespace loom::tokenizer::jinja
