#include "loom/train/data.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>

#include "loom/core/error.h"
#include "loom/format/atomic_file.h"
#include "loom/tokenizer/tokenizer.h"

namespace loom::train {

static_assert(std::endian::native == std::endian::little,
              "token shards are little-endian and read in place: big-endian hosts are not supported");

namespace {

constexpr char kMagic[8] = {'L', 'O', 'O', 'M', 'T', 'O', 'K', '1'};

constexpr std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr std::array<uint32_t, 256> kCrcTable = make_crc_table();

template <typename T>
T load(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}
template <typename T>
void store(std::byte* p, T v) {
  std::memcpy(p, &v, sizeof(T));
}

// SplitMix64 (Steele, Lea, Flood 2014) as the shuffle's generator: tiny,
// fully specified, and the same on every platform.
struct SplitMix64 {
  uint64_t x;
  uint64_t next() {
    uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) without modulo bias: reject the 2^64 mod n lowest draws.
  uint64_t uniform(uint64_t n) {
    const uint64_t threshold = (0 - n) % n;
    uint64_t r;
    do r = next();
    while (r < threshold);
    return r % n;
  }
};

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  LOOM_CHECK(in, "[train] {}: cannot open the text file", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  LOOM_CHECK(!in.bad(), "[train] {}: read failed", path);
  return std::move(ss).str();
}

}  // namespace

uint32_t crc32(std::span<const std::byte> bytes, uint32_t crc) {
  crc = ~crc;
  for (std::byte b : bytes) crc = kCrcTable[(crc ^ uint32_t(b)) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

// ---- shards -----------------------------------------------------------------

void write_shard(const std::string& path, std::span<const int32_t> tokens, int32_t vocab_size) {
  LOOM_CHECK(vocab_size > 0, "[train] {}: vocabulary size must be positive, got {}", path, vocab_size);
  const int width = vocab_size <= 65536 ? 2 : 4;
  std::vector<std::byte> data(tokens.size() * size_t(width));
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int32_t t = tokens[i];
    LOOM_CHECK(t >= 0 && t < vocab_size, "[train] {}: token {} at position {} is outside the vocabulary [0, {})", path,
               t, i, vocab_size);
    if (width == 2)
      store(data.data() + 2 * i, uint16_t(t));
    else
      store(data.data() + 4 * i, uint32_t(t));
  }
  std::array<std::byte, kShardHeaderSize> h{};
  std::memcpy(h.data(), kMagic, 8);
  store(h.data() + 8, kShardVersion);
  store(h.data() + 12, uint32_t(width));
  store(h.data() + 16, uint64_t(tokens.size()));
  store(h.data() + 24, uint32_t(vocab_size));
  store(h.data() + 28, crc32(data));
  store(h.data() + 32, crc32(std::span(h).first(32)));
  format::AtomicFile out(path);
  out.write(h.data(), h.size());
  out.write(data.data(), data.size());
  out.commit();
}

TokenShard TokenShard::open(const std::string& path) {
  TokenShard s;
  s.file_ = format::MappedFile::open(path);
  const std::byte* p = s.file_->data();
  const size_t size = s.file_->size();
  LOOM_CHECK(size >= kShardHeaderSize, "[train] {}: truncated token shard ({} bytes, the header alone is {})", path,
             size, kShardHeaderSize);
  LOOM_CHECK(std::memcmp(p, kMagic, 8) == 0,
             "[train] {}: not a loom token shard (bad magic; expected \"LOOMTOK1\"); make shards with "
             "tokenize_corpus_to_shards or write_shard",
             path);
  LOOM_CHECK(load<uint32_t>(p + 32) == crc32({p, 32}), "[train] {}: corrupt token shard header (CRC mismatch)", path);
  const uint32_t version = load<uint32_t>(p + 8);
  LOOM_CHECK(version == kShardVersion, "[train] {}: token shard version {}, this loom reads version {}", path, version,
             kShardVersion);
  const uint32_t width = load<uint32_t>(p + 12);
  const uint64_t count = load<uint64_t>(p + 16);
  const uint32_t vocab = load<uint32_t>(p + 24);
  LOOM_CHECK(width == 2 || width == 4, "[train] {}: token width {} bytes (must be 2 or 4)", path, width);
  LOOM_CHECK(vocab > 0 && vocab <= uint32_t(INT32_MAX), "[train] {}: vocabulary size {} is invalid", path, vocab);
  LOOM_CHECK(width == 4 || vocab <= 65536, "[train] {}: vocabulary size {} does not fit 2-byte tokens", path, vocab);
  const uint64_t data_bytes = (size - kShardHeaderSize);
  LOOM_CHECK(count <= data_bytes / width && count * width == data_bytes,
             "[train] {}: truncated or padded token shard: the header says {} tokens ({} bytes) but {} bytes follow it",
             path, count, count <= UINT64_MAX / width ? count * width : UINT64_MAX, data_bytes);
  const std::byte* data = p + kShardHeaderSize;
  const uint32_t crc = crc32({data, size_t(data_bytes)});
  LOOM_CHECK(crc == load<uint32_t>(p + 28), "[train] {}: corrupt token data (CRC {:08x}, the header says {:08x})", path,
             crc, load<uint32_t>(p + 28));
  for (uint64_t i = 0; i < count; ++i) {
    const uint32_t t = width == 2 ? load<uint16_t>(data + 2 * i) : load<uint32_t>(data + 4 * i);
    LOOM_CHECK(t < vocab, "[train] {}: token {} at position {} is not below the vocabulary size {}", path, t, i, vocab);
  }
  s.data_ = data;
  s.count_ = int64_t(count);
  s.vocab_ = int32_t(vocab);
  s.width_ = int(width);
  s.crc_ = crc;
  return s;
}

int32_t TokenShard::operator[](int64_t i) const {
  LOOM_CHECK(i >= 0 && i < count_, "[train] {}: token index {} out of range [0, {})", path(), i, count_);
  return width_ == 2 ? int32_t(load<uint16_t>(data_ + 2 * i)) : int32_t(load<uint32_t>(data_ + 4 * i));
}

void TokenShard::read(int64_t begin, std::span<int32_t> out) const {
  const int64_t n = int64_t(out.size());
  LOOM_CHECK(begin >= 0 && begin <= count_ && n <= count_ - begin,
             "[train] {}: reading tokens [{}, {}) of a shard of {}", path(), begin, begin + n, count_);
  const std::byte* p = data_ + begin * width_;
  if (width_ == 2)
    for (int64_t i = 0; i < n; ++i) out[i] = load<uint16_t>(p + 2 * i);
  else
    for (int64_t i = 0; i < n; ++i) out[i] = int32_t(load<uint32_t>(p + 4 * i));
}

std::vector<std::string> tokenize_corpus_to_shards(const tokenizer::Tokenizer& tok,
                                                   std::span<const std::string> text_files, const std::string& out_dir,
                                                   const ShardingOptions& o) {
  LOOM_CHECK(o.shard_tokens > 0, "[train] shard_tokens must be positive, got {}", o.shard_tokens);
  const int32_t eot = o.eot >= 0 ? o.eot : tok.eos();
  LOOM_CHECK(eot >= 0 && eot < tok.vocab_size(),
             "[train] no end-of-text token: the tokenizer has no EOS; pass ShardingOptions::eot");
  std::filesystem::create_directories(out_dir);
  std::vector<std::string> paths;
  std::vector<int32_t> pending;
  auto flush = [&](bool last) {
    while (int64_t(pending.size()) >= o.shard_tokens || (last && !pending.empty())) {
      const size_t n = std::min<size_t>(pending.size(), size_t(o.shard_tokens));
      const std::string path =
          (std::filesystem::path(out_dir) / fmt::format("{}-{:05}.tok", o.prefix, paths.size())).string();
      write_shard(path, std::span(pending).first(n), tok.vocab_size());
      paths.push_back(path);
      pending.erase(pending.begin(), pending.begin() + std::ptrdiff_t(n));
    }
  };
  for (const std::string& file : text_files) {
    const std::string text = read_text_file(file);
    std::string_view rest = text;
    while (true) {
      size_t cut = o.document_separator.empty() ? std::string_view::npos : rest.find(o.document_separator);
      const std::string_view doc = rest.substr(0, cut);
      if (!doc.empty()) {
        const std::vector<int32_t> ids = tok.encode(doc);
        pending.insert(pending.end(), ids.begin(), ids.end());
        pending.push_back(eot);
      }
      if (cut == std::string_view::npos) break;
      rest.remove_prefix(cut + o.document_separator.size());
      flush(false);
    }
    flush(false);
  }
  flush(true);
  return paths;
}

std::vector<std::string> list_shards(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.is_regular_file() && e.path().extension() == ".tok") out.push_back(e.path().string());
  LOOM_CHECK(!ec, "[train] {}: cannot list the shard directory: {}", dir, ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

// ---- loader -----------------------------------------------------------------

DataLoader::DataLoader(std::span<const std::string> shard_paths, const LoaderOptions& options) : o_(options) {
  LOOM_CHECK(o_.seq_len > 0 && o_.batch_size > 0,
             "[train] loader: seq_len and batch_size must be positive (got {}, {})", o_.seq_len, o_.batch_size);
  LOOM_CHECK(o_.world_size > 0 && o_.rank >= 0 && o_.rank < o_.world_size, "[train] loader: rank {} of world size {}",
             o_.rank, o_.world_size);
  LOOM_CHECK(!shard_paths.empty(), "[train] loader: no token shards given");
  std::vector<std::byte> crcs;
  for (const std::string& p : shard_paths) {
    shards_.push_back(TokenShard::open(p));
    const TokenShard& s = shards_.back();
    LOOM_CHECK(s.vocab_size() == shards_.front().vocab_size(),
               "[train] loader: {} has vocabulary size {} but {} has {}; shards of one run share a tokenizer", p,
               s.vocab_size(), shards_.front().path(), shards_.front().vocab_size());
    starts_.push_back(total_);
    total_ += s.size();
    std::array<std::byte, 12> rec;
    store(rec.data(), uint64_t(s.size()));
    store(rec.data() + 8, s.data_crc());
    crcs.insert(crcs.end(), rec.begin(), rec.end());
  }
  data_crc_ = crc32(crcs);
  windows_ = total_ > 0 ? (total_ - 1) / o_.seq_len : 0;
  LOOM_CHECK(windows_ > 0, "[train] loader: {} tokens are not enough for one window of seq_len + 1 = {}", total_,
             o_.seq_len + 1);
  int64_t h = o_.holdout_windows;
  if (h < 0) {
    LOOM_CHECK(o_.holdout_fraction >= 0 && o_.holdout_fraction < 1,
               "[train] loader: holdout_fraction must be in [0, 1), got {}", o_.holdout_fraction);
    h = int64_t(o_.holdout_fraction * double(windows_));
  }
  LOOM_CHECK(h < windows_, "[train] loader: holding out {} of {} windows leaves none to train on", h, windows_);
  std::vector<bool> held(size_t(windows_), false);
  for (int64_t i = 0; i < h; ++i) {
    // floor((2i + 1) W / 2H), in 128 bits so no corpus size overflows it.
    const auto w = int64_t((unsigned __int128)(2 * i + 1) * uint64_t(windows_) / uint64_t(2 * h));
    holdout_.push_back(w);
    held[size_t(w)] = true;
  }
  train_.reserve(size_t(windows_ - h));
  for (int64_t w = 0; w < windows_; ++w)
    if (!held[size_t(w)]) train_.push_back(w);
  scratch_.resize(size_t(o_.seq_len + 1));
}

const std::vector<int64_t>& DataLoader::permutation(int64_t epoch) const {
  if (perm_epoch_ == epoch) return perm_;
  perm_ = train_;
  SplitMix64 rng{o_.seed ^ (0x9e3779b97f4a7c15ULL * uint64_t(epoch + 1))};
  for (size_t i = perm_.size() - 1; i > 0; --i) std::swap(perm_[i], perm_[rng.uniform(i + 1)]);
  perm_epoch_ = epoch;
  return perm_;
}

std::vector<int64_t> DataLoader::stream_windows(int64_t begin, int64_t n) const {
  LOOM_CHECK(begin >= 0 && n >= 0, "[train] loader: stream positions [{}, {})", begin, begin + n);
  const auto m = int64_t(train_.size());
  std::vector<int64_t> out;
  out.reserve(size_t(n));
  for (int64_t p = begin; p < begin + n; ++p) out.push_back(permutation(p / m)[size_t(p % m)]);
  return out;
}

void DataLoader::read_window(int64_t w, int32_t* inputs, int32_t* targets) const {
  const int64_t t = o_.seq_len;
  int64_t pos = w * t, need = t + 1, done = 0;
  // The shard holding stream token `pos`: the last one starting at or before it.
  auto s = size_t(std::upper_bound(starts_.begin(), starts_.end(), pos) - starts_.begin() - 1);
  while (need > 0) {
    const TokenShard& shard = shards_[s];
    const int64_t off = pos - starts_[s];
    const int64_t n = std::min(need, shard.size() - off);
    shard.read(off, std::span(scratch_).subspan(size_t(done), size_t(n)));
    done += n, pos += n, need -= n, ++s;
  }
  std::copy_n(scratch_.begin(), t, inputs);
  std::copy_n(scratch_.begin() + 1, t, targets);
}

Batch DataLoader::make_batch(std::span<const int64_t> windows) const {
  Batch b;
  b.rows = int64_t(windows.size());
  b.seq_len = o_.seq_len;
  b.inputs.resize(size_t(b.rows * b.seq_len));
  b.targets.resize(b.inputs.size());
  b.windows.assign(windows.begin(), windows.end());
  for (int64_t r = 0; r < b.rows; ++r)
    read_window(windows[size_t(r)], b.inputs.data() + r * b.seq_len, b.targets.data() + r * b.seq_len);
  return b;
}

Batch DataLoader::next() {
  const int64_t global = o_.batch_size * o_.world_size;
  const auto w = stream_windows(position_ + o_.rank * o_.batch_size, o_.batch_size);
  position_ += global;
  return make_batch(w);
}

int64_t DataLoader::eval_batch_count() const {
  const int64_t global = o_.batch_size * o_.world_size;
  return (int64_t(holdout_.size()) + global - 1) / global;
}

Batch DataLoader::eval_batch(int64_t i) const {
  LOOM_CHECK(i >= 0 && i < eval_batch_count(), "[train] loader: eval batch {} of {}", i, eval_batch_count());
  const auto h = int64_t(holdout_.size());
  const int64_t begin = std::min(h, i * o_.batch_size * o_.world_size + o_.rank * o_.batch_size);
  const int64_t end = std::min(h, begin + o_.batch_size);
  return make_batch(std::span(holdout_).subspan(size_t(begin), size_t(end - begin)));
}

std::vector<Batch> DataLoader::eval_batches() const {
  std::vector<Batch> out;
  for (int64_t i = 0; i < eval_batch_count(); ++i) out.push_back(eval_batch(i));
  return out;
}

nlohmann::json DataLoader::state() const {
  return {{"epoch", epoch()},
          {"position", position_},
          {"seed", o_.seed},
          {"seq_len", o_.seq_len},
          {"train_windows", train_window_count()},
          {"tokens", total_},
          {"data_crc", data_crc_}};
}

void DataLoader::restore(const nlohmann::json& s) {
  int64_t position = 0;
  try {
    auto expect = [&](const char* key, auto have) {
      const auto saved = s.at(key).get<decltype(have)>();
      LOOM_CHECK(saved == have,
                 "[train] loader: the saved state has {} = {} but this loader has {}; resume with the same shards, "
                 "seq_len and seed",
                 key, saved, have);
    };
    expect("seq_len", o_.seq_len);
    expect("seed", o_.seed);
    expect("tokens", total_);
    expect("train_windows", train_window_count());
    expect("data_crc", data_crc_);
    position = s.at("position").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    fail("[train] loader: malformed saved state ({}): {}", e.what(), s.dump());
  }
  LOOM_CHECK(position >= 0, "[train] loader: saved position {} is negative", position);
  position_ = position;
}

}  // namespace loom::train
