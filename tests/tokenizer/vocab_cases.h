// Reading llama.cpp's tokenizer test vectors (shared/data/vocab): NAME.inp
// holds strings separated by "\n__ggml_vocab_test__\n" (a trailing separator
// ends the list), NAME.out one line of space-separated ids per string,
// encoded without BOS/EOS and with special-token text taken as plain text
// (llama.cpp's tests/test-tokenizer-0.cpp).
//
//   for (const VocabCase& c : read_vocab_cases(dir + "/ggml-vocab-gpt-2.gguf")) ...
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "loom/tokenizer/tokenizer.h"

namespace loom::tokenizer::testing {

struct VocabCase {
  std::string text;
  std::vector<int32_t> ids;
};

inline std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << "cannot open " << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// `base` is the path without ".inp"/".out" (e.g. ".../ggml-vocab-gpt-2.gguf").
inline std::vector<VocabCase> read_vocab_cases(const std::string& base) {
  const std::string inp = read_all(base + ".inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  for (size_t pos = 0; pos < inp.size();) {
    const size_t next = inp.find(sep, pos);
    if (next == std::string::npos) {
      texts.push_back(inp.substr(pos));
      break;
    }
    texts.push_back(inp.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::ifstream out(base + ".out");
  std::vector<VocabCase> cases;
  std::string line;
  for (size_t i = 0; std::getline(out, line); ++i) {
    EXPECT_LT(i, texts.size()) << ".out has more lines than .inp has strings";
    if (i >= texts.size()) break;
    VocabCase c{texts[i], {}};
    std::istringstream ids(line);
    for (int32_t id; ids >> id;) c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  EXPECT_EQ(cases.size(), texts.size());
  return cases;
}

inline std::string show(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += std::to_string(id) + " ";
  return s;
}

// Every case encodes to its ids; decoding the ids gives the text back when
// `round_trip` (false for families that normalise, e.g. NFC).
inline void expect_vectors(const Tokenizer& tok, const std::string& base, size_t expected_cases,
                           bool round_trip = true) {
  const auto cases = read_vocab_cases(base);
  ASSERT_EQ(cases.size(), expected_cases);
  size_t passed = 0;
  for (const VocabCase& c : cases) {
    const std::vector<int32_t> got = tok.encode(c.text, {.add_bos = false, .parse_special = false});
    EXPECT_EQ(got, c.ids) << "text '" << c.text << "'\n  expected " << show(c.ids) << "\n  got      " << show(got);
    passed += got == c.ids;
    if (round_trip) EXPECT_EQ(tok.decode(c.ids), c.text);
  }
  EXPECT_EQ(passed, cases.size()) << base;
}

}  // namespace loom::tokenizer::testing
