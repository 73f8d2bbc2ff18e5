// Token shards and the data loader. Expected values come from the raw token
// stream built in each test, hand calculations, the standard CRC-32 check
// value, and a Python transcription of the documented shuffle (SplitMix64 +
// Fisher-Yates) for the golden permutations.
#include "loom/train/data.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>

#include "loom/core/error.h"
#include "loom/tokenizer/tokenizer.h"
#include "support/test_data.h"

namespace loom::train {
namespace {

namespace fs = std::filesystem;

std::string fresh_dir(const std::string& name) {
  const std::string d = test::scratch_dir("train_data/" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::vector<unsigned char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::vector<unsigned char>& b) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

// CRC-32 bit by bit, straight from the polynomial (independent of the table
// the library uses).
uint32_t crc32_bitwise(const unsigned char* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

void put32(std::vector<unsigned char>& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = static_cast<unsigned char>(v >> (8 * i));
}

template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(TokenShard, Crc32GivesTheStandardCheckValue) {
  const char* s = "123456789";
  EXPECT_EQ(crc32(std::as_bytes(std::span(s, 9))), 0xCBF43926u);
}

TEST(TokenShard, RoundTripsTwoByteAndFourByteTokens) {
  const std::string d = fresh_dir("roundtrip");
  const std::vector<int32_t> small = {0, 1, 65535, 300, 7};
  write_shard(d + "/a.tok", small, 65536);
  const std::vector<int32_t> big = {0, 65536, 99999, 12};
  write_shard(d + "/b.tok", big, 100000);

  const auto a_bytes = read_bytes(d + "/a.tok");
  ASSERT_EQ(a_bytes.size(), 64u + 5 * 2);  // header + u16 tokens
  EXPECT_EQ(std::string(a_bytes.begin(), a_bytes.begin() + 8), "LOOMTOK1");
  EXPECT_EQ(a_bytes[16], 5);         // count
  EXPECT_EQ(a_bytes[64 + 4], 0xFF);  // 65535 little-endian at token 2
  EXPECT_EQ(a_bytes[64 + 5], 0xFF);
  EXPECT_EQ(read_bytes(d + "/b.tok").size(), 64u + 4 * 4);  // u32 tokens

  const TokenShard a = TokenShard::open(d + "/a.tok");
  EXPECT_EQ(a.size(), 5);
  EXPECT_EQ(a.token_bytes(), 2);
  EXPECT_EQ(a.vocab_size(), 65536);
  std::vector<int32_t> got(5);
  a.read(0, got);
  EXPECT_EQ(got, small);
  const TokenShard b = TokenShard::open(d + "/b.tok");
  EXPECT_EQ(b.token_bytes(), 4);
  for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(b[i], big[size_t(i)]);
  EXPECT_THROW(b[4], Error);
  std::vector<int32_t> three(3);
  EXPECT_THROW(b.read(2, three), Error);
}

TEST(TokenShard, EmptyShardIsValid) {
  const std::string d = fresh_dir("empty");
  write_shard(d + "/e.tok", {}, 10);
  EXPECT_EQ(TokenShard::open(d + "/e.tok").size(), 0);
}

TEST(TokenShard, WriterRejectsTokensOutsideTheVocabulary) {
  const std::string d = fresh_dir("writer_range");
  const std::vector<int32_t> bad = {1, 10};
  EXPECT_NE(error_of([&] { write_shard(d + "/x.tok", bad, 10); }).find("outside the vocabulary"), std::string::npos);
  const std::vector<int32_t> neg = {-1};
  EXPECT_THROW(write_shard(d + "/x.tok", neg, 10), Error);
  EXPECT_FALSE(fs::exists(d + "/x.tok"));
}

class CorruptShard : public ::testing::Test {
 protected:
  void SetUp() override {
    // One folder per test: ctest runs the tests of this fixture in parallel.
    dir_ = fresh_dir(std::string("corrupt/") + testing::UnitTest::GetInstance()->current_test_info()->name());
    path_ = dir_ + "/s.tok";
    std::vector<int32_t> t(100);
    std::iota(t.begin(), t.end(), 0);
    write_shard(path_, t, 1000);
    bytes_ = read_bytes(path_);
  }
  // The error message of opening the shard after `bytes_` was changed.
  std::string open_error() {
    write_bytes(path_, bytes_);
    const std::string e = error_of([&] { TokenShard::open(path_); });
    EXPECT_NE(e.find(path_), std::string::npos) << e;  // every error names the file
    return e;
  }
  std::string dir_, path_;
  std::vector<unsigned char> bytes_;
};

TEST_F(CorruptShard, TruncatedData) {
  bytes_.pop_back();
  EXPECT_NE(open_error().find("truncated"), std::string::npos);
}

TEST_F(CorruptShard, TruncatedHeader) {
  bytes_.resize(20);
  EXPECT_NE(open_error().find("truncated"), std::string::npos);
}

TEST_F(CorruptShard, EmptyFile) {
  bytes_.clear();
  EXPECT_NE(open_error().find("truncated"), std::string::npos);
}

TEST_F(CorruptShard, BadMagic) {
  bytes_[0] = 'X';
  EXPECT_NE(open_error().find("bad magic"), std::string::npos);
}

TEST_F(CorruptShard, DamagedHeader) {
  bytes_[16] ^= 1;  // token count
  EXPECT_NE(open_error().find("header (CRC mismatch)"), std::string::npos);
}

TEST_F(CorruptShard, DamagedTokens) {
  bytes_[64 + 11] ^= 0x40;
  EXPECT_NE(open_error().find("corrupt token data"), std::string::npos);
}

TEST_F(CorruptShard, TokenNotBelowTheVocabulary) {
  // Token 3 becomes 1000 (vocabulary 1000) with both CRCs recomputed, as a
  // buggy writer would have produced it.
  bytes_[64 + 6] = 1000 & 0xFF;
  bytes_[64 + 7] = 1000 >> 8;
  put32(bytes_, 28, crc32_bitwise(bytes_.data() + 64, bytes_.size() - 64));
  put32(bytes_, 32, crc32_bitwise(bytes_.data(), 32));
  const std::string e = open_error();
  EXPECT_NE(e.find("token 1000 at position 3 is not below the vocabulary size 1000"), std::string::npos) << e;
}

// ---- loader -----------------------------------------------------------------

// N tokens with value i at stream position i, split into uneven shards so
// that windows cross shard boundaries.
struct Corpus {
  std::vector<int32_t> stream;
  std::vector<std::string> paths;
};

Corpus make_corpus(const std::string& name, int32_t n, std::vector<int32_t> cuts) {
  Corpus c;
  const std::string d = fresh_dir(name);
  c.stream.resize(size_t(n));
  std::iota(c.stream.begin(), c.stream.end(), 0);
  cuts.insert(cuts.begin(), 0);
  cuts.push_back(n);
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    const std::string p = fmt::format("{}/shard-{:05}.tok", d, i);
    write_shard(p, std::span(c.stream).subspan(size_t(cuts[i]), size_t(cuts[i + 1] - cuts[i])), 5000);
    c.paths.push_back(p);
  }
  return c;
}

TEST(DataLoader, WindowsHeldOutSetAndGoldenShuffle) {
  // 49 tokens, T = 4: windows (49 - 1) / 4 = 12. Two held out:
  // floor(1 * 12 / 4) = 3 and floor(3 * 12 / 4) = 9.
  const Corpus c = make_corpus("golden", 49, {20});
  DataLoader dl(c.paths, {.seq_len = 4, .batch_size = 5, .seed = 42, .holdout_windows = 2});
  EXPECT_EQ(dl.window_count(), 12);
  EXPECT_EQ(dl.holdout_windows(), (std::vector<int64_t>{3, 9}));
  EXPECT_EQ(dl.train_window_count(), 10);
  // From a Python transcription of the documented algorithm (seed 42).
  EXPECT_EQ(dl.stream_windows(0, 10), (std::vector<int64_t>{2, 4, 11, 8, 6, 10, 7, 5, 0, 1}));
  EXPECT_EQ(dl.stream_windows(10, 10), (std::vector<int64_t>{0, 10, 1, 7, 5, 4, 6, 11, 2, 8}));
  DataLoader seven(c.paths, {.seq_len = 4, .batch_size = 5, .seed = 7, .holdout_windows = 2});
  EXPECT_EQ(seven.stream_windows(0, 10), (std::vector<int64_t>{7, 5, 10, 4, 1, 8, 0, 2, 6, 11}));
  // The first batch is the first five of the stream.
  EXPECT_EQ(dl.next().windows, (std::vector<int64_t>{2, 4, 11, 8, 6}));
}

TEST(DataLoader, TargetsAreInputsShiftedByOneAcrossShardBoundaries) {
  const Corpus c = make_corpus("shift", 1000, {333, 334, 700});
  DataLoader dl(c.paths, {.seq_len = 7, .batch_size = 4, .seed = 1});
  EXPECT_EQ(dl.window_count(), 999 / 7);
  for (int step = 0; step < 60; ++step) {
    const Batch b = dl.next();
    ASSERT_EQ(b.rows, 4);
    ASSERT_EQ(b.inputs.size(), 4u * 7);
    for (int64_t r = 0; r < b.rows; ++r) {
      const int64_t w = b.windows[size_t(r)];
      for (int64_t t = 0; t < 7; ++t) {
        EXPECT_EQ(b.inputs[size_t(r * 7 + t)], c.stream[size_t(w * 7 + t)]);
        EXPECT_EQ(b.targets[size_t(r * 7 + t)], c.stream[size_t(w * 7 + t + 1)]);
      }
    }
  }
}

TEST(DataLoader, EveryTrainingWindowAppearsOncePerEpochAndHeldOutNever) {
  const Corpus c = make_corpus("epoch", 1000, {500});
  DataLoader dl(c.paths, {.seq_len = 7, .batch_size = 5, .seed = 3, .holdout_fraction = 0.1});
  const int64_t w = 999 / 7, h = w / 10, m = w - h;  // 142, 14, 128
  ASSERT_EQ(dl.train_window_count(), m);
  ASSERT_EQ(int64_t(dl.holdout_windows().size()), h);
  std::vector<int64_t> seen;
  while (int64_t(seen.size()) < 3 * m) {  // 128 is not a multiple of 5: batches straddle epochs
    const Batch b = dl.next();
    seen.insert(seen.end(), b.windows.begin(), b.windows.end());
  }
  const std::set<int64_t> held(dl.holdout_windows().begin(), dl.holdout_windows().end());
  std::set<int64_t> expected;
  for (int64_t i = 0; i < w; ++i)
    if (!held.count(i)) expected.insert(i);
  std::vector<std::vector<int64_t>> epochs;
  for (int e = 0; e < 3; ++e) {
    std::vector<int64_t> ep(seen.begin() + e * m, seen.begin() + (e + 1) * m);
    EXPECT_EQ(std::set<int64_t>(ep.begin(), ep.end()), expected) << "epoch " << e;  // each once: m distinct of m
    epochs.push_back(ep);
  }
  EXPECT_NE(epochs[0], epochs[1]);  // reshuffled every epoch
  EXPECT_NE(epochs[1], epochs[2]);
}

TEST(DataLoader, SameSeedSameOrderDifferentSeedDifferentOrder) {
  const Corpus c = make_corpus("seed", 2000, {});
  auto windows = [&](uint64_t seed) {
    DataLoader dl(c.paths, {.seq_len = 16, .batch_size = 4, .seed = seed});
    std::vector<int64_t> out;
    for (int i = 0; i < 10; ++i) {
      const Batch b = dl.next();
      out.insert(out.end(), b.windows.begin(), b.windows.end());
    }
    return out;
  };
  EXPECT_EQ(windows(11), windows(11));
  EXPECT_NE(windows(11), windows(12));
}

TEST(DataLoader, TwoRanksWithBatchBSeeExactlyOneRankWithBatch2B) {
  const Corpus c = make_corpus("ranks", 3000, {1000, 2000});
  DataLoader one(c.paths, {.seq_len = 9, .batch_size = 6, .seed = 5, .holdout_fraction = 0.05});
  DataLoader r0(c.paths,
                {.seq_len = 9, .batch_size = 3, .seed = 5, .holdout_fraction = 0.05, .rank = 0, .world_size = 2});
  DataLoader r1(c.paths,
                {.seq_len = 9, .batch_size = 3, .seed = 5, .holdout_fraction = 0.05, .rank = 1, .world_size = 2});
  for (int step = 0; step < 120; ++step) {  // several epochs (317 training windows, 6 per step)
    const Batch b = one.next(), a0 = r0.next(), a1 = r1.next();
    std::vector<int64_t> w = a0.windows;
    w.insert(w.end(), a1.windows.begin(), a1.windows.end());
    ASSERT_EQ(w, b.windows) << "step " << step;
    std::vector<int32_t> in = a0.inputs, tg = a0.targets;
    in.insert(in.end(), a1.inputs.begin(), a1.inputs.end());
    tg.insert(tg.end(), a1.targets.begin(), a1.targets.end());
    ASSERT_EQ(in, b.inputs);
    ASSERT_EQ(tg, b.targets);
  }
  EXPECT_EQ(one.state(), r0.state());  // positions count windows of all ranks
}

TEST(DataLoader, RestoredStateContinuesLikeAnUninterruptedLoader) {
  const Corpus c = make_corpus("restore", 1500, {700});
  const LoaderOptions o{.seq_len = 8, .batch_size = 7, .seed = 9, .holdout_fraction = 0.02};
  DataLoader straight(c.paths, o);
  std::vector<Batch> expected;
  for (int i = 0; i < 60; ++i) expected.push_back(straight.next());

  DataLoader first(c.paths, o);
  for (int i = 0; i < 23; ++i) first.next();  // mid-epoch (184 training windows, 7 per step)
  const std::string saved = first.state().dump();

  DataLoader resumed(c.paths, o);
  resumed.restore(nlohmann::json::parse(saved));
  EXPECT_EQ(resumed.position(), 23 * 7);
  for (int i = 23; i < 60; ++i) {
    const Batch b = resumed.next();
    ASSERT_EQ(b.windows, expected[size_t(i)].windows) << "step " << i;
    ASSERT_EQ(b.inputs, expected[size_t(i)].inputs);
  }

  LoaderOptions other_seed = o;
  other_seed.seed = 10;
  DataLoader wrong(c.paths, other_seed);
  EXPECT_NE(error_of([&] { wrong.restore(nlohmann::json::parse(saved)); }).find("seed"), std::string::npos);
  LoaderOptions other_len = o;
  other_len.seq_len = 9;
  DataLoader wrong_len(c.paths, other_len);
  EXPECT_THROW(wrong_len.restore(nlohmann::json::parse(saved)), Error);
}

TEST(DataLoader, EvalBatchesWalkTheHeldOutWindowsInOrder) {
  const Corpus c = make_corpus("eval", 1000, {});
  // 999 / 3 = 333 windows, 10 held out: floor((2i + 1) * 333 / 20).
  DataLoader one(c.paths, {.seq_len = 3, .batch_size = 4, .seed = 1, .holdout_windows = 10});
  EXPECT_EQ(one.holdout_windows(), (std::vector<int64_t>{16, 49, 83, 116, 149, 183, 216, 249, 283, 316}));
  ASSERT_EQ(one.eval_batch_count(), 3);
  std::vector<int64_t> all;
  for (const Batch& b : one.eval_batches()) {
    all.insert(all.end(), b.windows.begin(), b.windows.end());
    for (int64_t r = 0; r < b.rows; ++r)
      for (int64_t t = 0; t < 3; ++t)
        EXPECT_EQ(b.targets[size_t(r * 3 + t)], c.stream[size_t(b.windows[size_t(r)] * 3 + t + 1)]);
  }
  EXPECT_EQ(all, one.holdout_windows());
  EXPECT_EQ(one.eval_batch(2).rows, 2);  // the last one is short

  // Two ranks with batch 2: the same global batches of 4, split in halves.
  DataLoader r0(c.paths, {.seq_len = 3, .batch_size = 2, .seed = 1, .holdout_windows = 10, .rank = 0, .world_size = 2});
  DataLoader r1(c.paths, {.seq_len = 3, .batch_size = 2, .seed = 1, .holdout_windows = 10, .rank = 1, .world_size = 2});
  ASSERT_EQ(r0.eval_batch_count(), 3);
  EXPECT_EQ(r0.eval_batch(2).windows, (std::vector<int64_t>{283, 316}));
  EXPECT_EQ(r1.eval_batch(2).rows, 0);
  EXPECT_EQ(r1.eval_batch(0).windows, (std::vector<int64_t>{83, 116}));
}

TEST(DataLoader, RejectsDataTooShortForOneWindow) {
  const Corpus c = make_corpus("short", 8, {});
  EXPECT_THROW(DataLoader(c.paths, {.seq_len = 8, .batch_size = 1}), Error);                        // needs 9 tokens
  EXPECT_THROW(DataLoader(c.paths, {.seq_len = 7, .batch_size = 1, .holdout_windows = 1}), Error);  // nothing left
  DataLoader ok(c.paths, {.seq_len = 7, .batch_size = 2});
  EXPECT_EQ(ok.next().windows, (std::vector<int64_t>{0, 0}));  // one window, every epoch
}

// ---- tokenize_corpus_to_shards ------------------------------------------------

// Bytes as ids 0..255, EOS 256: the expected stream is the text's bytes.
class ByteTokenizer : public tokenizer::Tokenizer {
 public:
  ByteTokenizer() { eos_ = 256; }
  std::vector<int32_t> encode(std::string_view text, const tokenizer::EncodeOptions&) const override {
    std::vector<int32_t> ids;
    for (unsigned char ch : text) ids.push_back(ch);
    return ids;
  }
  std::string token_bytes(int32_t id, bool) const override { return id < 256 ? std::string(1, char(id)) : ""; }
  bool adds_space_prefix() const override { return false; }
  int32_t vocab_size() const override { return 257; }
  const std::string& piece(int32_t) const override { return empty_; }
  tokenizer::TokenType type(int32_t id) const override {
    return id < 256 ? tokenizer::TokenType::Byte : tokenizer::TokenType::Control;
  }

 private:
  std::string empty_;
};

TEST(TokenizeCorpus, DocumentsEndWithEotAndTheStreamIsCutIntoShards) {
  const std::string d = fresh_dir("corpus");
  {
    std::ofstream(d + "/a.txt") << "ab|cd";
    std::ofstream(d + "/b.txt") << "xyz";
  }
  const std::vector<std::string> files = {d + "/a.txt", d + "/b.txt"};
  ByteTokenizer tok;
  const auto paths = tokenize_corpus_to_shards(tok, files, d + "/out", {.shard_tokens = 4, .document_separator = "|"});
  // "ab" EOT "cd" EOT "xyz" EOT: 10 tokens in shards of 4, 4, 2.
  const std::vector<int32_t> expected = {'a', 'b', 256, 'c', 'd', 256, 'x', 'y', 'z', 256};
  ASSERT_EQ(paths.size(), 3u);
  EXPECT_EQ(list_shards(d + "/out"), paths);
  std::vector<int32_t> got;
  for (const auto& p : paths) {
    const TokenShard s = TokenShard::open(p);
    EXPECT_EQ(s.vocab_size(), 257);
    for (int64_t i = 0; i < s.size(); ++i) got.push_back(s[i]);
  }
  EXPECT_EQ(got, expected);
  EXPECT_EQ(fs::path(paths[0]).filename(), "shard-00000.tok");
}

}  // namespace
}  // namespace loom::train
