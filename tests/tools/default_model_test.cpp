// loom's own default model (models/shakespeare-3m.gguf, trained by `loom
// train` on Tiny Shakespeare; README, "The default model"): committed under
// the size limit, used when no -m is given, and writing in the corpus's
// style: sampled text is laid out as a play, with speaker lines ("NAME:")
// naming characters who speak in the corpus.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "support/run_loom.h"
#include "support/test_data.h"

namespace loom {
namespace {

// "NAME:" lines of a play text: a line that is only capitals, spaces and a final colon.
std::vector<std::string> speaker_lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.size() < 3 || line.back() != ':') continue;
    bool caps = true;
    for (size_t i = 0; i + 1 < line.size(); ++i) caps = caps && ((line[i] >= 'A' && line[i] <= 'Z') || line[i] == ' ');
    if (caps && line[0] != ' ') out.push_back(line.substr(0, line.size() - 1));
  }
  return out;
}

TEST(DefaultModel, IsCommittedUnderTwentyMegabytes) {
  const std::string path = std::string(LOOM_SOURCE_DIR) + "/models/shakespeare-3m.gguf";
  ASSERT_TRUE(std::filesystem::exists(path)) << path;
  EXPECT_LE(std::filesystem::file_size(path), 20u << 20);
}

TEST(DefaultModel, WritesAPlayWhoseSpeakersAreTheCorpusCharacters) {
  LOOM_DATA(corpus_path, "corpora/en/tinyshakespeare_input.txt");
  std::ifstream f(corpus_path);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::vector<std::string> corpus_speakers = speaker_lines(ss.str());
  const std::set<std::string> known(corpus_speakers.begin(), corpus_speakers.end());
  ASSERT_GT(known.size(), 100u);  // the corpus is many plays

  size_t speakers = 0, from_corpus = 0;
  for (const char* seed : {"1", "2", "3"}) {
    // No -m: the default model. Sampling at temperature 0.8 from a speaker line.
    const test::LoomRun r = test::run_loom({"run", "-p", "ROMEO:\n", "-n", "200", "--temp", "0.8", "--seed", seed});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (const std::string& s : speaker_lines(r.out)) {
      ++speakers;
      from_corpus += known.count(s);
    }
  }
  // 600 tokens of play text hold several speeches; most speakers are real characters.
  EXPECT_GE(speakers, 6u);
  EXPECT_GE(from_corpus * 4, speakers * 3) << from_corpus << " of " << speakers << " speakers are in the corpus";
}

}  // namespace
}  // namespace loom
