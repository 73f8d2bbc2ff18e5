// TextOutput: the text a request's events carry. Token by token it releases
// only whole UTF-8 characters and never a piece that may still become a stop
// string; all pieces together are the whole-sequence decoding of the
// completion, cut just before the first stop string.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "engine_support.h"
#include "loom/engine/sequence.h"
#include "loom/tokenizer/tokenizer.h"

namespace loom::engine {
namespace {

bool whole_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    i += n;
  }
  return true;
}

struct Pieces {
  std::vector<std::string> parts;
  bool stopped = false;
  size_t stopped_at = 0;  // tokens pushed when the stop string completed
  std::string all() const {
    std::string s;
    for (const auto& p : parts) s += p;
    return s;
  }
};

Pieces run(const tokenizer::Tokenizer& tok, const std::vector<int32_t>& prompt, const std::vector<int32_t>& ids,
           std::vector<std::string> stops) {
  TextOutput out(tok, std::move(stops), prompt);
  Pieces p;
  for (size_t i = 0; i < ids.size() && !p.stopped; ++i) {
    p.parts.push_back(out.push(ids[i], p.stopped));
    if (p.stopped) p.stopped_at = i + 1;
  }
  if (!p.stopped) p.parts.push_back(out.finish());
  return p;
}

TEST(TextOutput, PiecesAreWholeCharactersThatAddUpToTheDecodedText) {
  LOOM_DATA(path, "models/tok512.bin");  // the default model's tokenizer
  auto tok = tokenizer::load(path);
  const auto prompt = tok->encode("Once upon a time", {.add_bos = true});
  const auto ids = tok->encode(" the café served crème brûlée to 🐱 and the dog");
  ASSERT_TRUE(std::any_of(ids.begin(), ids.end(), [&](int32_t id) { return !whole_utf8(tok->token_bytes(id)); }))
      << "the text should have characters split over byte tokens";
  const Pieces p = run(*tok, prompt, ids, {});
  for (const auto& part : p.parts) EXPECT_TRUE(whole_utf8(part)) << part;
  EXPECT_EQ(p.all(), test::completion_text(*tok, prompt, ids));
}

TEST(TextOutput, StopsJustBeforeTheFirstStopStringEvenAcrossTokens) {
  LOOM_DATA(path, "models/tok512.bin");  // the default model's tokenizer
  auto tok = tokenizer::load(path);
  const auto prompt = tok->encode("Once", {.add_bos = true});
  const auto ids = tok->encode(" upon a time there was a big dog. The dog was happy.");
  const std::string full = test::completion_text(*tok, prompt, ids);
  // "a big d" spans several tokens; "dog." comes later and must not win.
  const Pieces p = run(*tok, prompt, ids, {"dog.", "a big d"});
  EXPECT_TRUE(p.stopped);
  EXPECT_EQ(p.all(), full.substr(0, full.find("a big d")));
  // Held back while undecided: nothing of "a big" came out before the stop.
  EXPECT_EQ(p.all().find("a big"), std::string::npos);
  // A text ending in the start of a stop string gets that start at the end.
  const auto tail = tok->encode(" the dog was happ");
  const Pieces q = run(*tok, prompt, tail, {"happy!"});
  EXPECT_FALSE(q.stopped);
  EXPECT_EQ(q.parts.back().substr(q.parts.back().size() - 4), "happ");  // held until finish()
  EXPECT_EQ(q.all(), test::completion_text(*tok, prompt, tail));
}

}  // namespace
}  // namespace loom::engine
