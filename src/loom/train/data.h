// Training data: token shards on disk and the loader that cuts them into
// batches. A corpus is tokenized once into shards (the LOOMTOK1 format
// below); the loader reads fixed windows from the shards' concatenation in an
// order shuffled by seed, keeps a held-out set of windows for eval loss, and
// gives each data-parallel rank its slice of every global batch. Its state
// (epoch, position) is saved in checkpoints so a resumed run sees the same
// batches as an uninterrupted one.
//
//   auto paths = train::tokenize_corpus_to_shards(*tok, {"corpus.txt"}, "shards", {.shard_tokens = 1 << 24});
//   train::DataLoader data(paths, {.seq_len = 256, .batch_size = 8, .seed = 1, .holdout_fraction = 0.01});
//   train::Batch b = data.next();             // b.inputs, b.targets: [B, T]
//   nlohmann::json s = data.state();          // into the checkpoint; data.restore(s) on --resume
//
// Shard file (all integers little-endian; the header is 64 bytes so the
// tokens start aligned):
//   0   8  magic "LOOMTOK1"
//   8   4  u32 version (1)
//   12  4  u32 bytes per token: 2 (u16, vocabularies of at most 65536) or 4 (u32)
//   16  8  u64 token count
//   24  4  u32 vocabulary size (every token is below it)
//   28  4  u32 CRC-32 of the token bytes (IEEE 802.3 / zlib polynomial)
//   32  4  u32 CRC-32 of header bytes 0..31
//   36 28  zero
//   64     the tokens; the file ends right after them
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "loom/format/mapped_file.h"

namespace loom::tokenizer {
class Tokenizer;
}

namespace loom::train {

inline constexpr uint32_t kShardVersion = 1;
inline constexpr size_t kShardHeaderSize = 64;

// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, as zlib's crc32());
// `crc` continues a previous call.
uint32_t crc32(std::span<const std::byte> bytes, uint32_t crc = 0);

// Writes `tokens` as a shard at `path` (atomically: PATH.tmp, fsync, rename).
// Throws naming the path for a token outside [0, vocab_size).
void write_shard(const std::string& path, std::span<const int32_t> tokens, int32_t vocab_size);

// A shard, memory-mapped. open() checks the whole file (header, its CRC,
// the size, the data CRC, every token below the vocabulary size) and throws a
// loom::Error naming the file and what is wrong.
class TokenShard {
 public:
  static TokenShard open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  int64_t size() const { return count_; }
  int32_t vocab_size() const { return vocab_; }
  int token_bytes() const { return width_; }
  uint32_t data_crc() const { return crc_; }
  int32_t operator[](int64_t i) const;  // bounds-checked
  // Copies tokens [begin, begin + out.size()) into out; throws when out of range.
  void read(int64_t begin, std::span<int32_t> out) const;

 private:
  std::shared_ptr<const format::MappedFile> file_;
  const std::byte* data_ = nullptr;
  int64_t count_ = 0;
  int32_t vocab_ = 0;
  int width_ = 0;
  uint32_t crc_ = 0;
};

struct ShardingOptions {
  int64_t shard_tokens = int64_t(1) << 24;  // tokens per shard (the last one may be shorter)
  int32_t eot = -1;                         // appended after every document; -1: the tokenizer's EOS
  std::string document_separator = {};      // splits a file into documents (e.g. "<|endoftext|>"); empty: one per file
  std::string prefix = "shard";             // files are OUT_DIR/PREFIX-00000.tok, -00001.tok, ...
};

// Tokenizes text files (each file read whole) into shards in out_dir (created
// if missing): documents in file order, each followed by the end-of-text
// token, the stream cut into shards of shard_tokens. Returns the shard paths
// in order. Special-token text inside documents is not parsed as special.
std::vector<std::string> tokenize_corpus_to_shards(const tokenizer::Tokenizer& tok,
                                                   std::span<const std::string> text_files, const std::string& out_dir,
                                                   const ShardingOptions& options = {});

// The *.tok files of a directory, sorted by name.
std::vector<std::string> list_shards(const std::string& dir);

struct LoaderOptions {
  int64_t seq_len = 256;         // T
  int64_t batch_size = 8;        // B: rows per rank per step
  uint64_t seed = 0;             // shuffling
  double holdout_fraction = 0;   // share of windows held out for eval (floor), unless
  int64_t holdout_windows = -1;  // ... this is >= 0: exactly this many
  int rank = 0;                  // data parallel: this process's rank
  int world_size = 1;            // ... of this many
};

struct Batch {
  int64_t rows = 0;              // B (fewer only in the last eval batch)
  int64_t seq_len = 0;           // T
  std::vector<int32_t> inputs;   // [rows, T], row-major
  std::vector<int32_t> targets;  // [rows, T]: targets[r][t] == inputs[r][t + 1] of the window
  std::vector<int64_t> windows;  // [rows]: the window index of each row
};

// Windows: the shards are read as one token stream of N tokens; window w is
// tokens [w*T, w*T + T + 1) (consecutive windows share one token, so every
// token but the first is a target once per epoch); there are (N - 1) / T.
//
// Held out: H windows spread evenly over the stream, window
// floor((2i + 1) * W / (2H)) for i in [0, H), the same for every seed (eval
// loss stays comparable between runs). The other windows train.
//
// Order: the training windows form an endless stream, the concatenation of
// one permutation per epoch. Epoch e's permutation is a Fisher-Yates shuffle
// of the training windows (ascending) driven by SplitMix64 seeded with
// seed ^ (0x9e3779b97f4a7c15 * (e + 1)): for i = M-1 down to 1, swap i with
// j = uniform(i + 1), where uniform(n) draws x until x >= 2^64 mod n and
// returns x mod n. (No std:: distribution: their output differs between
// standard libraries.) Every training window appears once per epoch; a batch
// may straddle two epochs.
//
// Data parallel: step s's global batch is stream positions [s*G, (s+1)*G)
// with G = world_size * B; rank r takes rows [r*B, (r+1)*B) of it. So W ranks
// with batch B see exactly the windows of one rank with batch W*B, in order.
//
// Not thread-safe; one loader per rank.
class DataLoader {
 public:
  DataLoader(std::span<const std::string> shard_paths, const LoaderOptions& options);

  // The next training batch of this rank.
  Batch next();

  int64_t total_tokens() const { return total_; }
  int64_t window_count() const { return windows_; }                      // W
  int64_t train_window_count() const { return int64_t(train_.size()); }  // M
  const std::vector<int64_t>& holdout_windows() const { return holdout_; }
  int64_t epoch() const { return position_ / int64_t(train_.size()); }
  int64_t position() const { return position_; }  // windows consumed (all ranks), from the start

  // Held-out windows in order, in global batches of G = world_size * B; this
  // rank's slice of global batch i (the last one may be short or, for some
  // ranks, empty: rows == 0).
  int64_t eval_batch_count() const;
  Batch eval_batch(int64_t i) const;
  std::vector<Batch> eval_batches() const;

  // Where the stream stands: {"epoch", "position", "seed", "seq_len",
  // "train_windows", "tokens", "data_crc"}. restore() checks that the data,
  // seq_len and seed match (the batch size and world size may differ).
  nlohmann::json state() const;
  void restore(const nlohmann::json& state);

  // The window indices of stream positions [begin, begin + n) (for tests and logs).
  std::vector<int64_t> stream_windows(int64_t begin, int64_t n) const;

 private:
  void read_window(int64_t w, int32_t* inputs, int32_t* targets) const;
  const std::vector<int64_t>& permutation(int64_t epoch) const;
  Batch make_batch(std::span<const int64_t> windows) const;

  LoaderOptions o_;
  std::vector<TokenShard> shards_;
  std::vector<int64_t> starts_;  // first stream token of each shard
  int64_t total_ = 0;
  int64_t windows_ = 0;
  uint32_t data_crc_ = 0;  // over the shards' counts and CRCs
  std::vector<int64_t> holdout_;
  std::vector<int64_t> train_;
  int64_t position_ = 0;
  mutable int64_t perm_epoch_ = -1;
  mutable std::vector<int64_t> perm_;
  mutable std::vector<int32_t> scratch_;
};

}  // namespace loom::train
