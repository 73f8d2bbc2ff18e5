// json_constraint as a language recognizer: texts fed one byte per token
// through mask() and accept(). The valid/invalid texts below are written by
// hand from the JSON Schema 2020-12 and RFC 8259 rules (not produced by the
// code under test); loom's own, stricter generation rules are tested
// separately in LoomRestrictions.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "loom/core/error.h"
#include "loom/sample/constraint.h"
#include "sample/json_schema_validator.h"

namespace loom::sample {
namespace {

constexpr int32_t kEog = 256;

// Token i < 256 is the single byte i; token 256 ends generation; 257 is a
// control token with no text.
std::shared_ptr<const TokenTable> byte_table() {
  auto t = std::make_shared<TokenTable>();
  for (int i = 0; i < 256; ++i) t->bytes.emplace_back(1, char(i));
  t->bytes.emplace_back();  // 256: end of generation
  t->bytes.emplace_back();  // 257: another control token
  t->end_of_generation = {kEog};
  return t;
}

struct Outcome {
  bool accepted;     // every byte allowed, and then end of generation
  size_t rejected;   // index of the first forbidden byte (text.size() if none)
  std::string note;  // a broken rule of the interface, if any
};

// Checks what must hold in every state: control tokens are never allowed;
// once complete() only end of generation is. Returns a broken rule or "".
std::string check_mask(const ConstraintState& st, const std::vector<float>& logits) {
  if (!std::isinf(logits[257])) return "control token allowed";
  if (st.complete()) {
    if (std::isinf(logits[kEog])) return "complete() but end of generation forbidden";
    for (int i = 0; i < 256; ++i) {
      if (!std::isinf(logits[size_t(i)])) return "a byte allowed after complete()";
    }
  }
  return "";
}

// Feeds `text` byte by byte. At every step mask() and accept() must agree.
Outcome feed(const Constraint& c, const std::string& text) {
  auto st = c.start();
  std::vector<float> logits(258);
  for (size_t i = 0; i < text.size(); ++i) {
    std::fill(logits.begin(), logits.end(), 0.0f);
    st->mask(logits);
    if (std::string note = check_mask(*st, logits); !note.empty()) return {false, i, note};
    const int32_t tok = uint8_t(text[i]);
    const bool allowed = !std::isinf(logits[size_t(tok)]);
    bool threw = false;
    try {
      st->accept(tok);
    } catch (const Error&) {
      threw = true;
    }
    if (allowed == threw) return {false, i, allowed ? "accept() threw for an allowed byte" : "accept() took a masked byte"};
    if (!allowed) return {false, i, ""};
  }
  std::fill(logits.begin(), logits.end(), 0.0f);
  st->mask(logits);
  if (std::string note = check_mask(*st, logits); !note.empty()) return {false, text.size(), note};
  if (std::isinf(logits[kEog])) return {false, text.size(), ""};
  st->accept(kEog);
  return {true, text.size(), ""};
}

struct Case {
  const char* name;
  std::string schema;
  std::vector<std::string> valid;
  std::vector<std::string> invalid;
};

std::vector<Case> cases() {
  return {
      {"any_object",
       "",
       {R"({})", R"({"a":1})", R"( {"a": [1, 2.5e3, -0.5, true, false, null, "x"], "b": {"c": {}}})",
        R"({"k\u0001y": "v\u00e9\"\\\/\b\f\n\r\t"})", "{\"emoji\":\"\xF0\x9F\x98\x80\",\"cjk\":\"\xE4\xB8\xAD\xE6\x96\x87\"}",
        R"({"pair":"\ud83d\ude00","":""})", "{\n  \"a\": {\n    \"b\": [\n      1,\n      2\n    ]\n  }\n}",
        R"({"n":-0,"m":0.0,"e":1E+2,"f":1e-2})", R"({"deep":[[[[{"x":[]}]]]]})", R"({"a":1,"a":2})"},
       {R"([])", R"("x")", R"(1)", R"(null)", R"({"a"})", R"({"a":})", R"({a:1})", R"({"a":1,})", R"({"a":01})",
        R"({"a":1.})", R"({"a":.5})", R"({"a":tru})", "{\"a\":\"\x01\"}", R"({"a":"\x"})",
        "{\"a\":\"\xC0\xAF\"}", "{\"a\":\"\xED\xA0\x80\"}", "{\"a\":\"\xF4\x90\x80\x80\"}", "{\"a\":\"\x80\"}",
        R"({"a":NaN})", R"({"a":1}})", R"({"a":-})", R"({"a":1e})", R"({"a":+1})", R"({'a':1})", R"({"a":[1 2]})",
        R"({"a" 1})", R"({,})"}},
      {"person",
       R"({"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},
           "tags":{"type":"array","items":{"type":"string"}}},"required":["name","age"],
           "additionalProperties":false})",
       {R"({"name":"Al","age":3})", R"({"age":3,"name":"Al"})", R"({"name":"","age":-7,"tags":[]})",
        R"({"tags":["a","b"],"name":"x","age":0})", R"({ "name" : "A" , "age" : 10 })"},
       {R"({"name":"Al"})", R"({})", R"({"name":"Al","age":3,"x":1})", R"({"name":"Al","age":3.5})",
        R"({"name":1,"age":3})", R"({"name":"Al","age":"3"})", R"({"name":"Al","age":3,"tags":[1]})",
        R"({"name":"Al","age":3,"tags":"a"})", R"([])", R"({"nam":"x","age":1})", R"({"names":"x","age":1})",
        R"({"name":"Al","age":null})"}},
      {"int_array_1_to_3",
       R"({"type":"array","items":{"type":"integer"},"minItems":1,"maxItems":3})",
       {R"([1])", R"([1,2,3])", R"([ -1 , 0 ])", R"([10, 200, 3000])"},
       {R"([])", R"([1,2,3,4])", R"([1.5])", R"(["1"])", R"([1,])", R"({})"}},
      {"string_enum",
       R"({"type":"string","enum":["red","green","blue"],"description":"a colour"})",
       {R"("red")", R"("green")", R"("blue")"},
       {R"("Red")", R"("gree")", R"("greenish")", R"(red)", R"("yellow")", R"(1)", R"("")"}},
      {"mixed_enum",
       R"({"enum":["red",1,12,null,{"a":1},[true]]})",
       {R"("red")", R"(1)", R"(12)", R"(null)", R"({"a":1})", R"([true])"},
       {R"(2)", R"(123)", R"("1")", R"({"a":2})", R"([false])", R"(true)", R"(1.5)"}},
      {"const_discriminator",
       R"({"type":"object","properties":{"kind":{"const":"circle"},"r":{"type":"number"}},
           "required":["kind","r"],"additionalProperties":false})",
       {R"({"kind":"circle","r":1.5})", R"({"r":2e-3,"kind":"circle"})"},
       {R"({"kind":"square","r":1})", R"({"kind":"circle"})", R"({"kind":"circles","r":1})"}},
      {"any_of_and_type_arrays",
       R"({"type":"object","properties":{"id":{"anyOf":[{"type":"string","maxLength":3},{"type":"integer"}]},
           "note":{"type":["string","null"]}},"additionalProperties":false})",
       {R"({"id":"abc"})", R"({"id":42})", R"({"note":null})", R"({"note":"x","id":-1})", R"({})"},
       {R"({"id":"abcd"})", R"({"id":1.5})", R"({"id":null})", R"({"note":1})", R"({"other":1})"}},
      {"any_of_overlapping_objects",
       R"({"anyOf":[{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"],"additionalProperties":false},
                    {"type":"object","properties":{"a":{"type":"string"},"b":{"type":"boolean"}},"required":["b"],
                     "additionalProperties":false}]})",
       {R"({"a":1})", R"({"a":"x","b":true})", R"({"b":false})", R"({"b":true,"a":"y"})"},
       {R"({"a":1,"b":true})", R"({"a":"x"})", R"({})", R"({"b":1})"}},
      {"recursive_tree",
       R"({"$defs":{"node":{"type":"object","properties":{"value":{"type":"integer"},
           "children":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["value"],
           "additionalProperties":false}},"$ref":"#/$defs/node"})",
       {R"({"value":1})", R"({"value":1,"children":[{"value":2,"children":[]},{"value":3,"children":[{"value":4}]}]})",
        R"({"children":[{"value":5}],"value":0})"},
       {R"({"value":1,"children":[{}]})", R"({"value":1,"children":[{"value":"x"}]})", R"({"children":[]})",
        R"({"value":1,"children":{"value":2}})"}},
      {"recursive_root_arrays",
       R"({"type":"array","items":{"anyOf":[{"type":"integer"},{"$ref":"#"}]}})",
       {R"([])", R"([1,[2,[3,[]]]])", R"([[],[[]]])"},
       {R"([1,["x"]])", R"([[[]])", R"([1,{}])"}},
      {"string_length_in_characters",
       R"({"type":"string","minLength":2,"maxLength":3})",
       {R"("ab")", R"("abc")", "\"\xC3\xA9\xC3\xA9\"", "\"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\"",
        "\"\xF0\x9F\x98\x80\xF0\x9F\x98\x80\"", R"("\n\t")", R"("\u00e9x")", R"("\ud83d\ude00x")"},
       {R"("a")", R"("abcd")", R"("")", "\"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9Ex\"", R"("\ud83d\ude00")",
        "\"\xF0\x9F\x98\x80\""}},
      {"lone_all_of_around_a_ref",
       R"({"$defs":{"Color":{"enum":["red","blue"]}},"type":"object","properties":{
           "c":{"allOf":[{"$ref":"#/$defs/Color"}],"description":"the colour"}},"required":["c"]})",
       {R"({"c":"red"})", R"({"c":"blue","d":1})"},
       {R"({"c":"green"})", R"({})"}},
      {"additional_properties_schema",
       R"({"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":{"type":"number"}})",
       {R"({"a":"x","b":1})", R"({"b":2.5,"c":-1})", R"({"ab":1,"a":"s"})", R"({})", R"({"":0})",
        R"({"a\nb":1,"\u0001\"":2})"},
       {R"({"a":1})", R"({"b":"x"})", R"({"a":"x","b":true})", R"({"\u0061":1})"}},
      {"scalars_and_open_object",
       R"({"type":"object","title":"T","properties":{"ok":{"type":"boolean"},"n":{"type":"null"},
           "x":{"type":"number","format":"double"}},"required":["ok","n","x"]})",
       {R"({"ok":true,"n":null,"x":0})", R"({"x":-0.0e+10,"n":null,"ok":false,"extra":[1,{"y":"z"}]})",
        R"({"ok":false,"n":null,"x":1E5})"},
       {R"({"ok":"true","n":null,"x":0})", R"({"ok":true,"n":0,"x":0})", R"({"ok":true,"n":null,"x":"0"})",
        R"({"ok":true,"n":null})", R"({"ok":True,"n":null,"x":0})"}},
      {"top_level_number",
       R"({"type":"number"})",
       {R"(12)", R"(-0.5)", R"(3e10)", R"(0)"},
       {R"(012)", R"(-)", R"(1.)", R"("1")", R"(.1)"}},
  };
}

TEST(JsonConstraint, AcceptsValidAndRejectsInvalidTexts) {
  const auto table = byte_table();
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const auto con = json_constraint(table, c.schema);
    for (const std::string& text : c.valid) {
      const Outcome o = feed(*con, text);
      EXPECT_TRUE(o.note.empty()) << o.note << " in " << text << " at byte " << o.rejected;
      EXPECT_TRUE(o.accepted) << "valid text rejected at byte " << o.rejected << ": " << text;
    }
    for (const std::string& text : c.invalid) {
      const Outcome o = feed(*con, text);
      EXPECT_TRUE(o.note.empty()) << o.note << " in " << text << " at byte " << o.rejected;
      EXPECT_FALSE(o.accepted) << "invalid text accepted: " << text;
    }
  }
}

// Soundness against independent judges: random edits of the valid texts;
// whatever the constraint accepts, nlohmann::json must parse and the test's
// own validator must accept. (The other direction is the hand-written table:
// edits often produce valid JSON that loom's generation rules refuse, such as
// "1.0" for an integer; a few are printed for the record.)
TEST(JsonConstraint, AcceptsNothingAParserOrValidatorRefuses) {
  const auto table = byte_table();
  std::mt19937 rng(2024);
  const std::string alphabet = "{}[]\":,0123456789.-+eE tfnrulasx\\\n\t";
  int accepted = 0, refused_valid = 0;
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const auto con = json_constraint(table, c.schema);
    const test::Json schema = c.schema.empty() ? test::Json{{"type", "object"}} : test::Json::parse(c.schema);
    const test::SchemaValidator validator{schema};
    for (int n = 0; n < 3000; ++n) {
      std::string text = c.valid[rng() % c.valid.size()];
      for (int edits = 1 + int(rng() % 3); edits > 0 && !text.empty(); --edits) {
        const size_t at = rng() % text.size();
        const char ch = rng() % 8 == 0 ? char(0x80 + rng() % 0x80) : alphabet[rng() % alphabet.size()];
        switch (rng() % 4) {
          case 0: text.erase(at, 1); break;
          case 1: text.insert(text.begin() + std::ptrdiff_t(at), ch); break;
          case 2: text[at] = ch; break;
          default: text.insert(at, text.substr(at, rng() % 6)); break;
        }
      }
      const Outcome o = feed(*con, text);
      ASSERT_TRUE(o.note.empty()) << o.note << " in " << text;
      bool judged_valid = false;
      try {
        judged_valid = validator.valid(test::Json::parse(text), schema);
      } catch (const test::Json::exception&) {
      }
      if (o.accepted) {
        ++accepted;
        EXPECT_TRUE(judged_valid) << "accepted, but invalid: " << text;
      } else if (judged_valid && ++refused_valid <= (std::getenv("H3_ALL") ? 100000 : 12)) {
        std::printf("[ refused  ] %s: %s\n", c.name, text.c_str());
      }
    }
  }
  std::printf("[ edits    ] %d accepted (all valid), %d valid ones refused by loom's rules\n", accepted, refused_valid);
}

// Each accepted prefix can still be completed: a forbidden byte is found at
// the first byte that makes the text hopeless, not later.
TEST(JsonConstraint, RejectsAtTheFirstHopelessByte) {
  const auto table = byte_table();
  const auto person = json_constraint(table, R"({"type":"object","properties":{"name":{"type":"string"}},
      "required":["name"],"additionalProperties":false})");
  EXPECT_EQ(feed(*person, R"({"nax)").rejected, 4u);   // no key starts with "nax"
  EXPECT_EQ(feed(*person, R"({})").rejected, 1u);      // "name" is required
  EXPECT_EQ(feed(*person, R"({"name":"a",)").rejected, 11u);  // no other key exists
  const auto small = json_constraint(table, R"({"type":"array","maxItems":1})");
  EXPECT_EQ(feed(*small, R"([1,)").rejected, 2u);
}

// Rules loom adds for generation (documented in json_recognizer.h and
// json_schema.h); the texts are valid JSON that a parser would take.
TEST(JsonConstraint, LoomRestrictions) {
  const auto table = byte_table();
  const auto any = json_constraint(table, "");
  EXPECT_TRUE(feed(*any, "{\n    }").accepted);
  EXPECT_FALSE(feed(*any, "{\n     }").accepted);  // indentation: at most 4 bytes per open container
  EXPECT_FALSE(feed(*any, "{} ").accepted);                             // nothing after the value
  EXPECT_TRUE(feed(*any, R"({"a":123456789012345})").accepted);
  EXPECT_FALSE(feed(*any, R"({"a":1234567890123456})").accepted);  // at most 15 integer digits
  EXPECT_FALSE(feed(*any, R"({"a":1e100})").accepted);             // at most 2 exponent digits
  EXPECT_FALSE(feed(*any, R"({"a":"\ud800"})").accepted);          // lone surrogates (RFC 8259 8.2)
  EXPECT_FALSE(feed(*any, R"({"a":"\udc00"})").accepted);
  std::string deep = "{\"a\":" + std::string(31, '[') + std::string(31, ']') + "}";
  EXPECT_TRUE(feed(*any, deep).accepted);
  deep = "{\"a\":" + std::string(32, '[') + std::string(32, ']') + "}";
  EXPECT_FALSE(feed(*any, deep).accepted);  // at most 32 open containers
  const auto integer = json_constraint(table, R"({"type":"integer"})");
  EXPECT_FALSE(feed(*integer, "1.0").accepted);  // integers without fraction or exponent
  EXPECT_FALSE(feed(*integer, "1e2").accepted);
  const auto en = json_constraint(table, R"({"enum":[{"a":1}]})");
  EXPECT_FALSE(feed(*en, R"({"a": 1})").accepted);  // enum/const values in compact form only
  EXPECT_FALSE(feed(*any, R"({"\u00e9":1})").accepted);  // keys spelled as dump() does: no \u but
  EXPECT_FALSE(feed(*any, R"({"\/":1})").accepted);      // for control characters, no \/
  EXPECT_FALSE(feed(*any, R"({"\u000a":1})").accepted);  // (that is \n)
  EXPECT_FALSE(feed(*any, R"({"\u001F":1})").accepted);  // (lowercase)
  EXPECT_TRUE(feed(*any, R"({"e":"\u00e9\/"})").accepted);  // values may use any escape
  const auto obj = json_constraint(table, R"({"properties":{"a":{"type":"string"}}})");
  EXPECT_FALSE(feed(*obj, R"({"a":"x","a":"y"})").accepted);  // a declared key appears once
}

// Insignificant whitespace as pretty-printers write it is accepted, padding
// is not: a greedy model must not be able to spend its tokens on spaces.
TEST(JsonConstraint, WhitespaceIsWhatPrettyPrintersWrite) {
  const auto table = byte_table();
  const auto any = json_constraint(table, "");
  // Hand-written samples: 2-space, 4-space and tab indentation, CRLF line
  // ends, a space after ':' and ',' in one-line style, and the trailing space
  // after ',' older json.dumps(indent=...) wrote.
  const std::vector<std::string> pretty = {
      "{\n  \"name\": \"Tom\",\n  \"tags\": [\n    \"a\",\n    {\n      \"b\": [\n        1,\n        2\n      ]\n    }\n  ]\n}",
      "{\n    \"a\": {\n        \"b\": {\n            \"c\": [\n                true\n            ]\n        }\n    }\n}",
      "{\n\t\"a\": [\n\t\t1,\n\t\t2\n\t]\n}",
      "{\r\n  \"a\": 1,\r\n  \"b\": null\r\n}",
      "{\"a\": 1, \"b\": [1, 2, 3], \"c\" : {\"d\": false}}",
      "{\"a\": 1, \n \"b\": 2}",
      "\n{ \"a\": [ ] }",
  };
  for (const auto& text : pretty) {
    SCOPED_TRACE(text);
    const Outcome o = feed(*any, text);
    EXPECT_TRUE(o.accepted) << "rejected at byte " << o.rejected << " " << o.note;
  }
  // Rejected at the first byte past the rule (offsets counted by hand).
  EXPECT_EQ(feed(*any, "{" + std::string(40, ' ') + "}").rejected, 2u);    // one space, not two
  EXPECT_EQ(feed(*any, "{\n\n\"a\":1}").rejected, 2u);                    // one line break, not a blank line
  EXPECT_EQ(feed(*any, "{ \n \n}").rejected, 4u);                          // not even with spaces between
  EXPECT_EQ(feed(*any, "{\n" + std::string(30, ' ') + "}").rejected, 6u);  // 4 bytes of indentation at depth 1
  EXPECT_EQ(feed(*any, "{\"a\":[\n" + std::string(9, '\t') + "1]}").rejected, 15u);  // 8 at depth 2
  EXPECT_EQ(feed(*any, "{\r \"a\":1}").rejected, 2u);                      // CR only before LF
  EXPECT_EQ(feed(*any, "  {}").rejected, 1u);                               // before the value too
  EXPECT_EQ(feed(*any, "\n {}").rejected, 1u);                              // (no indentation at depth 0)
}

TEST(JsonConstraint, EndOfGenerationOnlyOnceComplete) {
  const auto table = byte_table();
  const auto con = json_constraint(table, "");
  auto st = con->start();
  std::vector<float> logits(258, 0.0f);
  EXPECT_THROW(st->accept(kEog), Error);
  EXPECT_THROW(st->accept(257), Error);
  EXPECT_THROW(st->accept(1000), Error);
  for (char c : std::string("{}")) st->accept(uint8_t(c));
  ASSERT_TRUE(st->complete());
  st->mask(logits);
  for (int i = 0; i < 258; ++i) EXPECT_EQ(std::isinf(logits[size_t(i)]), i != kEog) << i;
  EXPECT_THROW(st->accept('}'), Error);
  st->accept(kEog);
  EXPECT_TRUE(st->complete());
}

TEST(JsonConstraint, TokensSpanningSeveralJsonTokens) {
  auto t = std::make_shared<TokenTable>();
  t->bytes = {"{\"", "name", "\":\"", "\xE4\xB8", "\xAD", "\"}", "\"", "}", "", "ab\"c"};
  t->end_of_generation = {8};
  const auto con = json_constraint(t, R"({"type":"object","properties":{"name":{"type":"string","maxLength":1}},
      "required":["name"],"additionalProperties":false})");
  auto st = con->start();
  std::vector<float> logits(10);
  auto allowed = [&] {
    std::fill(logits.begin(), logits.end(), 0.0f);
    st->mask(logits);
    std::vector<int> out;
    for (int i = 0; i < 10; ++i) {
      if (!std::isinf(logits[size_t(i)])) out.push_back(i);
    }
    return out;
  };
  EXPECT_EQ(allowed(), (std::vector<int>{0}));
  st->accept(0);
  EXPECT_EQ(allowed(), (std::vector<int>{1}));
  st->accept(1);
  EXPECT_EQ(allowed(), (std::vector<int>{2, 6}));
  st->accept(2);
  EXPECT_EQ(allowed(), (std::vector<int>{0, 3, 5, 6, 7}));  // "{" or "}" as content, 2 bytes of a 3-byte character, or close
  st->accept(3);
  EXPECT_EQ(allowed(), (std::vector<int>{4}));  // only its last byte
  st->accept(4);
  EXPECT_EQ(allowed(), (std::vector<int>{5, 6}));  // maxLength 1 reached: the string must close
  st->accept(5);
  EXPECT_TRUE(st->complete());
  EXPECT_EQ(allowed(), (std::vector<int>{8}));
}

// A top-level number may always grow, so complete() stays false and the
// model ends it with end of generation, which mask() allows once the number
// is whole; at the digit limit nothing can follow and complete() holds.
TEST(JsonConstraint, TopLevelNumberEndsWhenTheModelSays) {
  const auto con = json_constraint(byte_table(), R"({"type":"integer"})");
  auto st = con->start();
  std::vector<float> logits(258);
  auto allowed = [&](int32_t id) {
    std::fill(logits.begin(), logits.end(), 0.0f);
    st->mask(logits);
    return !std::isinf(logits[size_t(id)]);
  };
  EXPECT_FALSE(allowed(kEog));
  st->accept('4');
  EXPECT_FALSE(st->complete());
  EXPECT_TRUE(allowed(kEog));
  EXPECT_TRUE(allowed('2'));
  EXPECT_FALSE(allowed('.'));  // integer
  for (int i = 0; i < 14; ++i) st->accept('2');
  EXPECT_TRUE(st->complete());  // 15 digits: the limit
  EXPECT_FALSE(allowed('2'));
  st->accept(kEog);
}

void expect_schema_error(const std::string& schema, const std::string& needle) {
  try {
    json_constraint(byte_table(), schema);
    ADD_FAILURE() << "no error for " << schema;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(JsonConstraint, UnsupportedKeywordsAreNamed) {
  expect_schema_error(R"({"type":"string","pattern":"^a"})", "'pattern'");
  expect_schema_error(R"({"oneOf":[{"type":"string"},{"type":"integer"}]})", "'oneOf'");
  expect_schema_error(R"({"allOf":[{"type":"string"},{"maxLength":3}]})", "'allOf'");
  expect_schema_error(R"({"type":"string","allOf":[{"maxLength":3}]})", "'allOf'");
  expect_schema_error(R"({"not":{"type":"string"}})", "'not'");
  expect_schema_error(R"({"type":"object","properties":{"n":{"type":"integer","minimum":0}}})", "'minimum'");
  expect_schema_error(R"({"type":"object","properties":{"n":{"type":"integer","minimum":0}}})", "#/properties/n");
  expect_schema_error(R"({"type":"array","uniqueItems":true})", "'uniqueItems'");
  expect_schema_error(R"({"type":"object","patternProperties":{"a":{}}})", "'patternProperties'");
  expect_schema_error(R"({"$ref":"#/$defs/missing"})", "does not point into the schema");
  expect_schema_error(R"({"$ref":"https://example.com/s.json"})", "only references into the same schema");
  expect_schema_error(R"({"type":"strin"})", "unknown type");
  expect_schema_error(R"({"type":)", "not valid JSON");
  expect_schema_error(R"({"type":"object","properties":{},"required":["a"],"additionalProperties":false})",
                      "required property");
}

TEST(JsonConstraint, AnnotationsAreIgnored) {
  EXPECT_NO_THROW(json_constraint(byte_table(), R"({"title":"T","description":"d","$schema":"x","type":"object",
      "properties":{"d":{"type":"string","format":"date-time","default":"x","examples":["y"],"x-order":1}}})"));
}

}  // namespace
}  // namespace loom::sample
