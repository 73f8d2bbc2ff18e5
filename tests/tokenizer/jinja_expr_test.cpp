// The chat-template interpreter's expressions, values and filters. Every
// expected string is what Python/Jinja2 prints for the same expression,
// worked out by hand from Python's rules (noted where they are not obvious).
#include <gtest/gtest.h>

#include <string>

#include "loom/tokenizer/jinja/template.h"

namespace loom::tokenizer::jinja {
namespace {

std::string render(std::string_view source, std::string_view vars_json = "{}") {
  return Template::parse(source, "test").render(parse_json_value(vars_json).as_dict());
}

TEST(JinjaExpr, Arithmetic) {
  EXPECT_EQ(render("{{ 1 + 2 * 3 }}"), "7");
  EXPECT_EQ(render("{{ (1 + 2) * 3 }}"), "9");
  EXPECT_EQ(render("{{ 7 // 2 }} {{ -7 // 2 }}"), "3 -4");  // floor division rounds down
  EXPECT_EQ(render("{{ 7 % 3 }} {{ -7 % 3 }} {{ 7 % -3 }}"), "1 2 -2");  // the result takes the divisor's sign
  EXPECT_EQ(render("{{ 1 / 4 }} {{ 10 / 5 }}"), "0.25 2.0");  // true division always gives a float
  EXPECT_EQ(render("{{ 2 ** 10 }} {{ -3 }} {{ - -3 }}"), "1024 -3 3");
  EXPECT_EQ(render("{{ 1.5 + 1 }} {{ 0.1 + 0.2 }}"), "2.5 0.30000000000000004");
  EXPECT_EQ(render("{{ 'ab' + 'cd' }} {{ 'ab' * 3 }} {{ [1] + [2] }} {{ [0] * 2 }}"), "abcd ababab [1, 2] [0, 0]");
}

TEST(JinjaExpr, PythonStrOfValues) {
  EXPECT_EQ(render("{{ none }} {{ true }} {{ False }}"), "None True False");
  EXPECT_EQ(render("{{ 1.0 }} {{ 1e20 }} {{ 0.0001 }} {{ 0.00001 }} {{ -0.0 }}"), "1.0 1e+20 0.0001 1e-05 -0.0");
  EXPECT_EQ(render("{{ [1, 'a', none, true, 1.5] }}"), "[1, 'a', None, True, 1.5]");
  EXPECT_EQ(render("{{ {'a': [1, {'b': 'c'}]} }}"), "{'a': [1, {'b': 'c'}]}");
  EXPECT_EQ(render("{{ [\"it's\"] }} {{ ['a\\nb'] }}"), "[\"it's\"] ['a\\nb']");  // repr picks the other quote
  EXPECT_EQ(render("{{ (1, 2) }} {{ (1,) }}"), "(1, 2) (1,)");
  EXPECT_EQ(render("{{ undefined_name }}|"), "|");  // undefined prints as nothing
}

TEST(JinjaExpr, ConcatenationAndStringEscapes) {
  EXPECT_EQ(render("{{ 'a' ~ 1 ~ none ~ true }}"), "a1NoneTrue");
  EXPECT_EQ(render("{{ 'x' ~ nothing ~ 'y' }}"), "xy");  // ~ turns undefined into ""
  EXPECT_EQ(render(R"({{ 'tab\there' }}|{{ "q\"uote" }}|{{ '\u4f60\x41' }}|{{ 'a' 'b' }})"), "tab\there|q\"uote|你A|ab");
  EXPECT_EQ(render(R"({{ '\d' }})"), "\\d");  // Python keeps unknown escapes as they are
}

TEST(JinjaExpr, ComparisonsAndLogic) {
  EXPECT_EQ(render("{{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' == 'a' }} {{ [1, 2] == [1, 2] }} {{ (1, 2) == [1, 2] }}"),
            "True True True True False");
  EXPECT_EQ(render("{{ 1 < 2 < 3 }} {{ 3 > 2 > 5 }} {{ 'b' >= 'a' }}"), "True False True");  // chained as in Python
  EXPECT_EQ(render("{{ 'a' in 'cat' }} {{ 2 not in [1, 3] }} {{ 'k' in {'k': 1} }}"), "True True True");
  EXPECT_EQ(render("{{ 0 or 'x' }} {{ 1 and 'y' }} {{ '' and 'z' }}|{{ not none }}"), "x y |True");  // and/or give operands
  EXPECT_EQ(render("{{ 'y' if 1 > 0 else 'n' }} {{ 'y' if 0 else 'n' }} [{{ 'y' if false }}]"), "y n []");
}

TEST(JinjaExpr, AttributesSubscriptsAndSlices) {
  const char* vars = R"({"m": {"role": "user", "content": "héllo"}, "xs": [1, 2, 3, 4]})";
  EXPECT_EQ(render("{{ m.role }} {{ m['content'] }} {{ xs[0] }} {{ xs[-1] }} {{ xs.1 }}", vars), "user héllo 1 4 2");
  // Strings index and slice by character, not by byte.
  EXPECT_EQ(render("{{ m.content[1] }} {{ m.content[1:3] }} {{ m.content[::-1] }}", vars), "é él olléh");
  EXPECT_EQ(render("{{ xs[1:3] }} {{ xs[::2] }} {{ xs[:-1] }} {{ xs[10:] }}", vars), "[2, 3] [1, 3] [1, 2, 3] []");
  // A missing key, attribute or index is undefined, not an error.
  EXPECT_EQ(render("{{ m.tools is defined }} {{ xs[9] is defined }} {{ m.content.nope is defined }}", vars),
            "False False False");
}

TEST(JinjaExpr, Tests) {
  EXPECT_EQ(render("{{ x is defined }} {{ x is undefined }} {{ none is none }} {{ 1 is not none }}"),
            "False True True True");
  EXPECT_EQ(render("{{ 1 is number }} {{ 1 is integer }} {{ 1.0 is float }} {{ true is boolean }} {{ 'x' is string }}"),
            "True True True True True");
  EXPECT_EQ(render("{{ {} is mapping }} {{ [] is iterable }} {{ 'ab' is sequence }} {{ true is true }} {{ 0 is false }}"),
            "True True True True False");  // `false` is an identity test: 0 is not False
  EXPECT_EQ(render("{{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 2 is in [1, 2] }} {{ 'ab' is lower }}"),
            "True True True True True");
  EXPECT_EQ(render("{{ 'a' is eq 'a' }} {{ 2 is gt 1 }} {{ 2 is equalto(3) }}"), "True True False");
}

TEST(JinjaExpr, StringFilters) {
  EXPECT_EQ(render("[{{ '  x \n'|trim }}] [{{ 'xxhixx'|trim('x') }}]"), "[x] [hi]");
  EXPECT_EQ(render("{{ 'Hello'|upper }} {{ 'Hello'|lower }} {{ 'hELLO wORLD'|capitalize }}"), "HELLO hello Hello world");
  // Jinja's title capitalises after '-' too; Python's str.title() after any non-letter.
  EXPECT_EQ(render("{{ 'hello world-wide'|title }} {{ \"it's\".title() }}"), "Hello World-Wide It'S");
  EXPECT_EQ(render("{{ 'a-b-c'|replace('-', '+') }} {{ 'aaa'|replace('a', 'b', 2) }}"), "a+b+c bba");
  EXPECT_EQ(render("{{ '你好世界'|length }} {{ [1, 2]|count }} {{ {'a': 1}|length }}"), "4 2 1");
  EXPECT_EQ(render("{{ 42|string ~ 'x' }} {{ none|string }} {{ 'a\nb'|indent(2) }}"), "42x None a\n  b");
  EXPECT_EQ(render("{{ '<a>'|e }} {{ '<a>'|safe }}"), "&lt;a&gt; <a>");
}

TEST(JinjaExpr, SequenceFilters) {
  const char* vars = R"({"ms": [{"role": "system", "content": "s"}, {"role": "user", "content": "u1"},
                                {"role": "assistant", "content": "a"}, {"role": "user", "content": "u2"}]})";
  EXPECT_EQ(render("{{ ms|map(attribute='role')|join(',') }}", vars), "system,user,assistant,user");
  EXPECT_EQ(render("{{ ms|selectattr('role', 'equalto', 'user')|map(attribute='content')|list }}", vars), "['u1', 'u2']");
  EXPECT_EQ(render("{{ ms|rejectattr('role', 'eq', 'user')|list|length }}", vars), "2");
  EXPECT_EQ(render("{{ (ms|last).content }} {{ (ms|first).role }} {{ ms|join(', ', attribute='content') }}", vars),
            "u2 system s, u1, a, u2");
  EXPECT_EQ(render("{{ [3, 1, 2]|sort }} {{ [3, 1, 2]|sort(reverse=true)|first }} {{ ['b', 'A', 'c']|min }}"),
            "[1, 2, 3] 3 A");  // min/sort ignore case by default
  EXPECT_EQ(render("{{ [1, 2, 3]|select('odd')|list }} {{ [none, 0, 'x']|select|list }} {{ ['a']|map('upper')|list }}"),
            "[1, 3] ['x'] ['A']");
  EXPECT_EQ(render("{{ [1, 2, 2, 3]|unique|list }} {{ [1, 2, 3]|sum }} {{ [1, 2]|reverse|list }} {{ 'abc'|list }}"),
            "[1, 2, 3] 6 [2, 1] ['a', 'b', 'c']");
  EXPECT_EQ(render("{{ {'b': 1, 'a': 2}|items|list }} {{ {'b': 1, 'a': 2}|dictsort }}"),
            "[('b', 1), ('a', 2)] [('a', 2), ('b', 1)]");
}

TEST(JinjaExpr, ConversionAndDefaultFilters) {
  EXPECT_EQ(render("{{ missing|default('d') }} {{ ''|default('e') }}|{{ ''|default('e', true) }} {{ none|d('n') }}"),
            "d |e None");  // default only replaces undefined unless boolean=true
  EXPECT_EQ(render("{{ '42'|int + 1 }} {{ 'x'|int }} {{ 3.7|int }} {{ '1A'|int(0, 16) }} {{ '2.5'|float }}"),
            "43 0 3 26 2.5");  // 0x1A = 26
  EXPECT_EQ(render("{{ 2.5|round }} {{ 3.14159|round(2) }} {{ -3|abs }}"), "2.0 3.14 3");  // round half to even
}

TEST(JinjaExpr, ToJsonIsJsonDumpsWithoutAsciiEscaping) {
  // transformers' tojson: json.dumps(x, ensure_ascii=False), ", " and ": " separators, keys in insertion order.
  EXPECT_EQ(render(R"({{ {"name": "f", "args": {"x": [1, 2.0, "é\"\n"], "y": none, "z": true}}|tojson }})"),
            R"({"name": "f", "args": {"x": [1, 2.0, "é\"\n"], "y": null, "z": true}})");
  // With indent: "," at line ends, nested levels indented, empty containers stay [] and {}.
  EXPECT_EQ(render("{{ {'a': [], 'b': {}, 'c': [1, {'d': 2}]}|tojson(indent=2) }}"),
            "{\n  \"a\": [],\n  \"b\": {},\n  \"c\": [\n    1,\n    {\n      \"d\": 2\n    }\n  ]\n}");
  EXPECT_EQ(render("{{ '<tag>'|tojson }}"), "\"<tag>\"");  // no HTML escaping
}

TEST(JinjaExpr, StringAndDictMethods) {
  EXPECT_EQ(render("{{ ' x '.strip() }}|{{ 'xxhixx'.lstrip('x') }}|{{ ' a '.rstrip() }}|"), "x|hixx| a|");
  EXPECT_EQ(render("{{ 'Hello'.startswith('He') }} {{ 'Hello'.endswith(('x', 'lo')) }} {{ 'hi'.upper() }}"),
            "True True HI");
  EXPECT_EQ(render("{{ 'aXbXc'.split('X') }} {{ ' a b  c '.split() }} {{ 'a,b,c'.split(',', 1) }}"),
            "['a', 'b', 'c'] ['a', 'b', 'c'] ['a', 'b,c']");
  EXPECT_EQ(render("{{ 'a,b'.replace(',', ';') }} {{ 'hello world'.title() }} {{ '-'.join(['a', 'b']) }}"),
            "a;b Hello World a-b");
  // \u3000 (ideographic space) is whitespace to Python's strip().
  EXPECT_EQ(render("[{{ '\u3000 你好 \n'.strip() }}]"), "[你好]");
  const char* vars = R"({"d": {"a": 1, "b": 2}})";
  EXPECT_EQ(render("{{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 0) }} {{ d.keys()|list }} {{ d.values()|list }}", vars),
            "1 None 0 ['a', 'b'] [1, 2]");
  EXPECT_EQ(render("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", vars), "a=1;b=2;");
}

}  // namespace
}  // namespace loom::tokenizer::jinja
