// Session keeps a sequence in the KV cache across chat turns: a later turn
// feeds only the tokens the cache does not hold yet, and rewinding to a
// shared prefix then refeeding gives exactly what a fresh session computes.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "loom/core/error.h"
#include "loom/engine/session.h"
#include "support/test_data.h"

namespace loom::engine {
namespace {

SessionOptions options(const std::string& path) {
  SessionOptions o;
  o.model_path = path;
  o.threads = 2;
  return o;
}

GenerateOptions greedy(int64_t n) {
  GenerateOptions g;
  g.n_predict = n;
  g.sampling.temperature = 0;
  g.stop_at_eog = false;  // random weights: keep going whatever comes out
  return g;
}

std::vector<int32_t> generate(Session& s, std::span<const int32_t> prompt, int64_t n) {
  std::vector<int32_t> out;
  s.generate(prompt, greedy(n), [&](int32_t id) {
    out.push_back(id);
    return true;
  });
  return out;
}

TEST(Session, ASecondTurnFeedsOnlyTheNewTokens) {
  LOOM_DATA(path, "models/arch/llama-random.gguf");
  Session s(options(path));
  const auto& tok = s.tokenizer();
  const std::vector<int32_t> turn1 = tok.encode("User: hello there\nAssistant:", {.add_bos = true});
  const std::vector<int32_t> answer1 = generate(s, turn1, 6);
  ASSERT_EQ(answer1.size(), 6u);
  // The last sampled token is returned but not fed: the cache holds the
  // prompt and the first five answer tokens.
  EXPECT_EQ(s.position(), int64_t(turn1.size() + 5));
  EXPECT_EQ(std::vector<int32_t>(s.tokens().begin(), s.tokens().end()),
            [&] {
              std::vector<int32_t> v = turn1;
              v.insert(v.end(), answer1.begin(), answer1.end() - 1);
              return v;
            }());

  // Turn 2 is the whole conversation; the cache already has all of it but the suffix.
  std::vector<int32_t> turn2 = turn1;
  turn2.insert(turn2.end(), answer1.begin(), answer1.end());
  const std::vector<int32_t> more = tok.encode("\nUser: and now?\nAssistant:");
  turn2.insert(turn2.end(), more.begin(), more.end());
  size_t keep = 0;
  while (keep < s.tokens().size() && s.tokens()[keep] == turn2[keep]) ++keep;
  EXPECT_EQ(keep, size_t(s.position()));  // everything cached is a prefix of turn 2
  s.rewind(int64_t(keep));
  const int64_t before = s.position();
  const std::span<const int32_t> suffix(turn2.data() + keep, turn2.size() - keep);
  const std::vector<int32_t> answer2 = generate(s, suffix, 5);
  // The position grew by the new suffix and the 4 fed answer tokens, nothing more.
  EXPECT_EQ(s.position(), before + int64_t(suffix.size()) + 4);
  EXPECT_EQ(suffix.size(), 1 + more.size());  // the unfed last answer token plus the new text

  // KV reuse is exact: a fresh session fed turn 2 at once answers the same.
  Session fresh(options(path));
  EXPECT_EQ(generate(fresh, turn2, 5), answer2);
}

TEST(Session, RewindAndRefeedMatchesAFreshSession) {
  LOOM_DATA(path, "models/arch/llama-random.gguf");
  Session s(options(path));
  const auto& tok = s.tokenizer();
  const std::vector<int32_t> shared = tok.encode("The quick brown fox", {.add_bos = true});
  const std::vector<int32_t> first = tok.encode(" jumps over the lazy dog");
  const std::vector<int32_t> second = tok.encode(" sleeps all day long");

  std::vector<int32_t> a = shared;
  a.insert(a.end(), first.begin(), first.end());
  s.feed(a);
  ASSERT_EQ(s.position(), int64_t(a.size()));

  // Go back to the shared prefix and continue differently.
  s.rewind(int64_t(shared.size()));
  EXPECT_EQ(s.position(), int64_t(shared.size()));
  EXPECT_EQ(s.tokens().size(), shared.size());
  const std::span<const float> logits = s.feed(second);
  const std::vector<float> rewound(logits.begin(), logits.end());

  std::vector<int32_t> b = shared;
  b.insert(b.end(), second.begin(), second.end());
  Session fresh(options(path));
  const std::span<const float> fresh_logits = fresh.feed(b);
  ASSERT_EQ(fresh_logits.size(), rewound.size());
  double max_diff = 0;
  for (size_t i = 0; i < rewound.size(); ++i) max_diff = std::max(max_diff, double(std::fabs(rewound[i] - fresh_logits[i])));
  EXPECT_LT(max_diff, 1e-4) << "the stale entries past the rewind point must not leak into attention";

  // And greedy continuations agree token for token.
  s.rewind(int64_t(b.size()) - 1);
  fresh.rewind(int64_t(b.size()) - 1);
  const std::span<const int32_t> last(&b.back(), 1);
  EXPECT_EQ(generate(s, last, 8), generate(fresh, last, 8));
}

TEST(Session, RewindOutsideTheSequenceIsAnError) {
  LOOM_DATA(path, "models/arch/llama-random.gguf");
  Session s(options(path));
  s.feed(s.tokenizer().encode("hello", {.add_bos = true}));
  EXPECT_THROW(s.rewind(s.position() + 1), Error);
  EXPECT_THROW(s.rewind(-1), Error);
  s.rewind(0);
  EXPECT_EQ(s.position(), 0);
  EXPECT_TRUE(s.tokens().empty());
}

}  // namespace
}  // namespace loom::engine
