// json_constraint with real vocabularies (Llama 2 SentencePiece, 32000
// tokens; Qwen2 byte-level BPE, 151k tokens): random walks through the
// allowed tokens must end in text that nlohmann::json parses and that a small
// independent validator (below, written from the JSON Schema spec) accepts.
// Also: mask() agrees token by token with stepping the recognizer over each
// token's bytes, and its time per call is reported.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "loom/core/error.h"
#include "loom/sample/constraint.h"
#include "loom/sample/json_recognizer.h"
#include "loom/tokenizer/tokenizer.h"
#include "sample/json_schema_validator.h"
#include "support/test_data.h"

namespace loom::sample {
namespace {

using Json = nlohmann::json;

// --- Vocabularies ---------------------------------------------------------------

std::shared_ptr<const TokenTable> table_of(const tokenizer::Tokenizer& tok) {
  auto t = std::make_shared<TokenTable>();
  for (int32_t id = 0; id < tok.vocab_size(); ++id) {
    t->bytes.push_back(tok.token_bytes(id));
    if (tok.is_eog(id)) t->end_of_generation.push_back(id);
  }
  return t;
}

std::shared_ptr<const TokenTable> load_table(const std::string& path) {
  static std::map<std::string, std::shared_ptr<const TokenTable>> cache;
  auto& t = cache[path];
  if (!t) t = table_of(*tokenizer::load(path));
  return t;
}

// --- Walks ----------------------------------------------------------------------

// Whether `text` ends inside a string (a scan independent of the recognizer).
bool inside_string(const std::string& text) {
  bool in = false;
  for (size_t i = 0; i < text.size(); ++i) {
    if (in && text[i] == '\\') {
      ++i;
    } else if (text[i] == '"') {
      in = !in;
    }
  }
  return in;
}

struct Timing {
  std::vector<double> in_string_ms, outside_ms;
  void print(const char* what) const {
    auto report = [&](const char* where, std::vector<double> v) {
      if (v.empty()) return;
      std::sort(v.begin(), v.end());
      double sum = 0;
      for (double x : v) sum += x;
      std::printf("[ timing   ] %s mask() %s: n=%zu mean=%.3f ms p50=%.3f ms p99=%.3f ms max=%.3f ms\n", what, where,
                  v.size(), sum / double(v.size()), v[v.size() / 2], v[v.size() * 99 / 100], v.back());
    };
    report("inside strings", in_string_ms);
    report("elsewhere", outside_ms);
  }
  double mean() const {
    double sum = 0;
    for (double x : in_string_ms) sum += x;
    for (double x : outside_ms) sum += x;
    return sum / double(std::max<size_t>(1, in_string_ms.size() + outside_ms.size()));
  }
};

struct WalkOptions {
  size_t max_tokens = 1000;
  bool cross_check = false;  // compare mask() with stepping the recognizer over every token
};

// (Required keys next to additionalProperties are left to the hand-written
// cases: a random walk seldom spells a required key among arbitrary ones.)

// Picks allowed tokens at random: freely for `free_steps` tokens, then
// preferring tokens that close strings, objects and arrays. Returns the text.
std::string walk(const Constraint& c, const TokenTable& t, const std::string& schema, std::mt19937& rng,
                 size_t free_steps, const WalkOptions& o, Timing& timing) {
  auto st = c.start();
  std::vector<float> logits(t.bytes.size());
  std::string text;
  const json::Grammar g = json::compile_schema(schema);
  const json::Recognizer rec(g);
  json::Paths paths = rec.start(), next;

  for (size_t step = 0; step < o.max_tokens; ++step) {
    std::fill(logits.begin(), logits.end(), 0.0f);
    const auto t0 = std::chrono::steady_clock::now();
    st->mask(logits);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    (inside_string(text) ? timing.in_string_ms : timing.outside_ms).push_back(ms);

    std::vector<int32_t> allowed, forbidden;
    for (size_t id = 0; id < logits.size(); ++id) (std::isinf(logits[id]) ? forbidden : allowed).push_back(int32_t(id));
    if (allowed.empty()) {
      ADD_FAILURE() << "dead end after: " << text;
      return text;
    }
    if (o.cross_check) {
      for (size_t id = 0; id < t.bytes.size(); ++id) {
        const std::string& b = t.bytes[id];
        bool ok = !b.empty() && std::find(t.end_of_generation.begin(), t.end_of_generation.end(), int32_t(id)) ==
                                    t.end_of_generation.end();
        json::Paths a = paths, z;
        for (size_t i = 0; ok && i < b.size(); ++i) {
          z.clear();
          rec.step(a, uint8_t(b[i]), z);
          std::swap(a, z);
          ok = !a.empty();
        }
        if (!ok && std::find(t.end_of_generation.begin(), t.end_of_generation.end(), int32_t(id)) !=
                       t.end_of_generation.end()) {
          ok = rec.complete(paths);
        }
        if (ok != !std::isinf(logits[id])) {
          ADD_FAILURE() << "mask() and stepping disagree on token " << id << " (" << Json(b).dump(-1, ' ', false,
                        Json::error_handler_t::replace) << ") after: " << text;
          return text;
        }
      }
    }
    if (st->complete()) {
      for (int32_t id : allowed) {
        EXPECT_NE(std::find(t.end_of_generation.begin(), t.end_of_generation.end(), id), t.end_of_generation.end())
            << "token " << id << " allowed after a complete value";
      }
      st->accept(allowed[0]);
      return text;
    }

    // A forbidden token is refused now and then.
    if (step % 7 == 3 && !forbidden.empty()) {
      EXPECT_THROW(st->accept(forbidden[rng() % forbidden.size()]), Error);
    }

    std::vector<int32_t> pick = allowed;
    if (step >= free_steps) {
      auto with = [&](auto pred) {
        std::vector<int32_t> out;
        for (int32_t id : allowed) {
          if (pred(t.bytes[size_t(id)])) out.push_back(id);
        }
        return out;
      };
      auto has = [](const std::string& s, const char* chars) { return s.find_first_of(chars) != std::string::npos; };
      std::vector<int32_t> better;
      if (inside_string(text)) better = with([&](const std::string& s) { return has(s, "\""); });
      if (better.empty()) better = with([&](const std::string& s) { return has(s, "}]"); });
      if (better.empty()) better = with([&](const std::string& s) { return has(s, "\"") && !has(s, "{["); });
      if (better.empty()) better = with([&](const std::string& s) { return !has(s, "{["); });
      if (!better.empty()) pick = std::move(better);
    } else if (rng() % 2) {
      // Short tokens half the time, so structure (not just long strings) gets explored.
      std::vector<int32_t> shorter;
      for (int32_t id : allowed) {
        if (t.bytes[size_t(id)].size() <= 2) shorter.push_back(id);
      }
      if (!shorter.empty()) pick = std::move(shorter);
    }
    const int32_t id = pick[rng() % pick.size()];
    st->accept(id);
    text += t.bytes[size_t(id)];
    for (char ch : t.bytes[size_t(id)]) {
      next.clear();
      rec.step(paths, uint8_t(ch), next);
      std::swap(paths, next);
    }
  }
  ADD_FAILURE() << "no complete value within " << o.max_tokens << " tokens: " << text;
  return text;
}

const char* kPerson = R"({"type":"object","properties":{
    "name":{"type":"string","minLength":1,"maxLength":12},
    "age":{"type":"integer"},
    "score":{"type":["number","null"]},
    "role":{"enum":["admin","user","guest"]},
    "tags":{"type":"array","items":{"type":"string","maxLength":5},"maxItems":3},
    "address":{"type":"object","properties":{"city":{"type":"string"},"zip":{"type":"string"}},
               "required":["city"],"additionalProperties":false}},
  "required":["name","age","role"],"additionalProperties":false})";

const char* kTree = R"({"$defs":{"node":{"type":"object","properties":{
    "label":{"anyOf":[{"type":"string","maxLength":8},{"type":"integer"},{"type":"null"}]},
    "children":{"type":"array","items":{"$ref":"#/$defs/node"},"maxItems":2}},
  "required":["label"],"additionalProperties":false}},"$ref":"#/$defs/node"})";

const char* kMap = R"({"type":"object","properties":{"kind":{"const":"map"},"flag":{"type":"boolean"}},
  "additionalProperties":{"type":"array","items":{"type":"number"},"minItems":1}})";

const char* kEvents = R"({"type":"array","minItems":1,"maxItems":4,"items":{"anyOf":[
    {"type":"object","properties":{"type":{"const":"click"},"x":{"type":"integer"},"y":{"type":"integer"}},
     "required":["type","x","y"],"additionalProperties":false},
    {"type":"object","properties":{"type":{"const":"key"},"key":{"type":"string","maxLength":3}},
     "required":["type","key"],"additionalProperties":false}]}})";

void run_walks(const std::string& vocab_path, const std::vector<std::pair<const char*, std::string>>& schemas,
               int walks, uint32_t seed, const WalkOptions& o, Timing& timing) {
  const auto table = load_table(vocab_path);
  std::mt19937 rng(seed);
  for (const auto& [name, schema] : schemas) {
    SCOPED_TRACE(name);
    const auto con = json_constraint(table, schema);
    const Json schema_doc = schema.empty() ? Json{{"type", "object"}} : Json::parse(schema);
    const test::SchemaValidator validator{schema_doc};
    int nested = 0;
    for (int w = 0; w < walks; ++w) {
      const std::string text = walk(*con, *table, schema, rng, rng() % 40, o, timing);
      if (::testing::Test::HasFailure()) return;
      Json v;
      try {
        v = Json::parse(text);
      } catch (const Json::exception& e) {
        ADD_FAILURE() << "not JSON (" << e.what() << "): " << text;
        return;
      }
      EXPECT_TRUE(validator.valid(v, schema_doc)) << "not valid under the schema: " << text;
      nested += text.find_first_of("[{", 1) != std::string::npos;
      if (w < 2) std::printf("[ sample   ] %s: %s\n", name, text.substr(0, 300).c_str());
    }
    std::printf("[ walks    ] %s: %d walks, %d with nested containers\n", name, walks, nested);
  }
}

std::vector<std::pair<const char*, std::string>> all_schemas() {
  return {{"json_object", ""}, {"person", kPerson}, {"tree", kTree}, {"map", kMap}, {"events", kEvents}};
}

TEST(JsonConstraintWalk, LlamaSpmVocab) {
  LOOM_DATA(path, "vocab/ggml-vocab-llama-spm.gguf");
  Timing timing;
  run_walks(path, all_schemas(), 40, 1234, {}, timing);
  timing.print("llama-spm 32000");
  EXPECT_LT(timing.mean(), 50.0);
}

TEST(JsonConstraintWalk, Qwen2Vocab) {
  LOOM_DATA(vocab, "tokenizers/qwen2/vocab.json");
  const std::string path = vocab.substr(0, vocab.rfind('/'));
  Timing timing;
  run_walks(path, all_schemas(), 30, 99, {}, timing);
  timing.print("qwen2 151643");
  EXPECT_LT(timing.mean(), 50.0);
}

// The trie walk and the plain-content shortcut allow exactly the tokens
// whose bytes the recognizer accepts one by one.
TEST(JsonConstraintWalk, MaskMatchesStepping) {
  LOOM_DATA(path, "vocab/ggml-vocab-llama-spm.gguf");
  Timing timing;
  WalkOptions o;
  o.cross_check = true;
  run_walks(path, {{"json_object", ""}, {"person", kPerson}, {"events", kEvents}}, 3, 7, o, timing);
}

TEST(JsonConstraintWalk, MaskMatchesSteppingByteLevel) {
  LOOM_DATA(vocab, "tokenizers/qwen2/vocab.json");
  const std::string path = vocab.substr(0, vocab.rfind('/'));
  Timing timing;
  WalkOptions o;
  o.cross_check = true;
  run_walks(path, {{"tree", kTree}, {"map", kMap}}, 2, 8, o, timing);
}

// mask() time in chosen states of the 151k-token Qwen2 vocabulary (reported;
// the bound only catches pathologies), and the time to build a constraint.
TEST(JsonConstraintWalk, Qwen2MaskTimes) {
  LOOM_DATA(vocab, "tokenizers/qwen2/vocab.json");
  const auto table = load_table(vocab.substr(0, vocab.rfind('/')));
  struct Probe {
    const char* what;
    std::string schema, prefix;
  };
  const std::vector<Probe> probes = {
      {"start of text", "", ""},
      {"object key, any key", "", "{\""},
      {"object key, declared + undeclared", kMap, "{\""},
      {"object key, declared only", kPerson, "{\""},
      {"value of any type", "", "{\"a\":"},
      {"inside a string value", "", "{\"a\":\"xy"},
      {"inside a string, maxLength 5", kPerson, "{\"tags\":[\"ab"},
      {"inside a string, mid-character", "", "{\"a\":\"\xE4"},
      {"inside a string, after a backslash", "", "{\"a\":\"\\"},
      {"after a value", "", "{\"a\":1"},
      {"number", "", "{\"a\":12"},
      {"anyOf of two objects", kEvents, "[{\"type\":"},
  };
  for (const Probe& p : probes) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto con = json_constraint(table, p.schema);
    const double build_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    auto st = con->start();
    // The prefix goes in one byte at a time, through the single-byte tokens
    // byte-level BPE has for every byte.
    for (char ch : p.prefix) {
      const auto it = std::find(table->bytes.begin(), table->bytes.end(), std::string(1, ch));
      ASSERT_NE(it, table->bytes.end());
      st->accept(int32_t(it - table->bytes.begin()));
    }
    std::vector<float> logits(table->bytes.size());
    double best = 1e9, total = 0;
    size_t allowed = 0;
    constexpr int kRuns = 20;
    for (int r = 0; r < kRuns; ++r) {
      std::fill(logits.begin(), logits.end(), 0.0f);
      const auto a = std::chrono::steady_clock::now();
      st->mask(logits);
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count();
      best = std::min(best, ms);
      total += ms;
    }
    for (float l : logits) allowed += !std::isinf(l);
    std::printf("[ timing   ] qwen2 %-36s mask() min %.3f ms, mean %.3f ms; %zu tokens allowed; constraint built in %.0f ms\n",
                p.what, best, total / kRuns, allowed, build_ms);
    EXPECT_LT(best, 50.0) << p.what;
  }
}

}  // namespace
}  // namespace loom::sample
