// llama2.c checkpoints and tokenizer files. The checkpoint has no magic, so
// the header is checked for plausibility (bounds, divisibility) and the file
// size against what the header describes before any array is located.
#include "loom/format/llama2c.h"

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include "loom/core/error.h"

namespace loom::format {

namespace {

constexpr size_t kHeaderBytes = 7 * sizeof(int32_t);
// Upper bounds far above any llama2.c model; they reject garbage headers and
// keep every size product below 2^63, so the arithmetic below cannot overflow
// (the largest product, L*H*D, is at most 2^10 * 2^18 * 2^16 = 2^44 elements).
constexpr int64_t kMaxDim = int64_t(1) << 16;
constexpr int64_t kMaxHidden = int64_t(1) << 18;
constexpr int64_t kMaxLayers = 1024;
constexpr int64_t kMaxVocab = int64_t(1) << 21;
constexpr int64_t kMaxSeqLen = int64_t(1) << 20;
// A token piece longer than this is corruption, not a token.
constexpr int64_t kMaxTokenBytes = 64 * 1024;

struct Layout {
  Llama2cConfig config;
  int64_t kv_dim = 0;
  int64_t head_size = 0;
  uint64_t required_bytes = 0;  // header + every array, incl. wcls when untied
};

// Validates the header; returns the layout, or the reason it is not one.
std::optional<Layout> read_layout(const MappedFile& file, std::string* why) {
  if (file.size() < kHeaderBytes) {
    *why = fmt::format("file is {} bytes, too small for the {}-byte llama2.c header", file.size(), kHeaderBytes);
    return std::nullopt;
  }
  int32_t h[7];
  std::memcpy(h, file.data(), kHeaderBytes);
  Layout l;
  Llama2cConfig& c = l.config;
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.seq_len = h[6];
  // A negative vocab size is how llama2.c marks an untied output classifier.
  const int64_t vocab = h[5];
  c.shared_classifier = vocab > 0;
  const int64_t v = vocab < 0 ? -vocab : vocab;

  auto in_range = [&](std::string_view name, int64_t x, int64_t max) {
    if (x >= 1 && x <= max) return true;
    *why = fmt::format("llama2.c header: {} is {}, expected 1..{}", name, x, max);
    return false;
  };
  if (!in_range("dim", c.dim, kMaxDim) || !in_range("hidden_dim", c.hidden_dim, kMaxHidden) ||
      !in_range("n_layers", c.n_layers, kMaxLayers) || !in_range("n_heads", c.n_heads, c.dim) ||
      !in_range("n_kv_heads", c.n_kv_heads, c.n_heads) || !in_range("vocab_size", v, kMaxVocab) ||
      !in_range("seq_len", c.seq_len, kMaxSeqLen))
    return std::nullopt;
  c.vocab_size = int32_t(v);
  if (c.dim % c.n_heads != 0) {
    *why = fmt::format("llama2.c header: dim {} is not a multiple of n_heads {}", c.dim, c.n_heads);
    return std::nullopt;
  }
  if (c.n_heads % c.n_kv_heads != 0) {
    *why = fmt::format("llama2.c header: n_heads {} is not a multiple of n_kv_heads {}", c.n_heads, c.n_kv_heads);
    return std::nullopt;
  }
  l.head_size = c.dim / c.n_heads;
  if (l.head_size % 2 != 0) {
    *why = fmt::format("llama2.c header: head size {} (dim / n_heads) is odd; RoPE needs pairs", l.head_size);
    return std::nullopt;
  }
  l.kv_dim = int64_t(c.n_kv_heads) * l.head_size;

  const int64_t D = c.dim, H = c.hidden_dim, L = c.n_layers, V = c.vocab_size, KVD = l.kv_dim;
  int64_t floats = V * D                         // token_embedding
                   + L * D                       // rms_att
                   + L * D * D + 2 * L * KVD * D  // wq, wk, wv
                   + L * D * D                   // wo
                   + L * D                       // rms_ffn
                   + 3 * L * H * D               // w1, w2, w3
                   + D                           // rms_final
                   + int64_t(c.seq_len) * l.head_size;  // freq_cis_real + freq_cis_imag, [seq_len, head_size/2] each
  if (!c.shared_classifier) floats += V * D;     // wcls
  l.required_bytes = kHeaderBytes + uint64_t(floats) * sizeof(float);
  return l;
}

}  // namespace

bool looks_like_llama2c(const MappedFile& file) {
  std::string why;
  const auto layout = read_layout(file, &why);
  return layout && layout->required_bytes == file.size();
}

Llama2cCheckpoint read_llama2c_checkpoint(const std::string& path) {
  return parse_llama2c_checkpoint(MappedFile::open(path));
}

Llama2cCheckpoint parse_llama2c_checkpoint(std::shared_ptr<const MappedFile> file) {
  LOOM_CHECK(file != nullptr, "[format] parse_llama2c_checkpoint: no file given");
  const std::string& path = file->path();
  std::string why;
  const auto layout = read_layout(*file, &why);
  if (!layout) fail("[format] {}: not a llama2.c checkpoint: {}", path, why);
  if (file->size() < layout->required_bytes)
    fail("[format] {}: llama2.c checkpoint is truncated: the header describes {} bytes, the file has {}", path,
         layout->required_bytes, file->size());
  // The arrays are used in place as floats; a mapping is page-aligned, but a
  // caller's buffer (from_memory) might not be.
  LOOM_CHECK(reinterpret_cast<uintptr_t>(file->data()) % alignof(float) == 0,
             "[format] {}: buffer is not 4-byte aligned; copy it to aligned memory first", path);

  Llama2cCheckpoint ck;
  ck.config = layout->config;
  ck.file = file;
  const auto& c = ck.config;
  const int64_t D = c.dim, H = c.hidden_dim, L = c.n_layers, V = c.vocab_size, KVD = layout->kv_dim;
  const float* p = reinterpret_cast<const float*>(file->data() + kHeaderBytes);
  auto take = [&p](Shape s) {
    Llama2cArray a{p, s};
    p += s.numel();
    return a;
  };
  ck.token_embedding = take({V, D});
  ck.rms_att = take({L, D});
  ck.wq = take({L, D, D});
  ck.wk = take({L, KVD, D});
  ck.wv = take({L, KVD, D});
  ck.wo = take({L, D, D});
  ck.rms_ffn = take({L, D});
  ck.w1 = take({L, H, D});
  ck.w2 = take({L, D, H});
  ck.w3 = take({L, H, D});
  ck.rms_final = take({D});
  take({int64_t(c.seq_len), layout->head_size / 2});  // freq_cis_real: loom computes RoPE itself
  take({int64_t(c.seq_len), layout->head_size / 2});  // freq_cis_imag
  ck.wcls = c.shared_classifier ? ck.token_embedding : take({V, D});
  return ck;
}

Llama2cVocab read_llama2c_vocab(const std::string& path, int32_t vocab_size) {
  return parse_llama2c_vocab(*MappedFile::open(path), vocab_size);
}

Llama2cVocab parse_llama2c_vocab(const MappedFile& file, int32_t vocab_size) {
  const std::string& path = file.path();
  LOOM_CHECK(vocab_size >= 1 && vocab_size <= kMaxVocab, "[format] {}: vocab size {} is outside 1..{}", path,
             vocab_size, kMaxVocab);
  const std::byte* p = file.data();
  size_t left = file.size();
  auto read_i32 = [&](int32_t* out) {
    std::memcpy(out, p, 4);
    p += 4;
    left -= 4;
  };

  Llama2cVocab vocab;
  if (left < 4) fail("[format] {}: llama2.c tokenizer is {} bytes, too small for its header", path, left);
  read_i32(&vocab.max_token_length);
  LOOM_CHECK(vocab.max_token_length >= 0 && vocab.max_token_length <= kMaxTokenBytes,
             "[format] {}: llama2.c tokenizer: max_token_length is {}, expected 0..{}", path, vocab.max_token_length,
             kMaxTokenBytes);
  // Each entry is at least a score and a length (8 bytes): check the count
  // against the file before reserving.
  if (uint64_t(vocab_size) * 8 > left)
    fail("[format] {}: llama2.c tokenizer: {} tokens need at least {} bytes, the file has {} after its header "
         "(is this the tokenizer of this model?)",
         path, vocab_size, uint64_t(vocab_size) * 8, left);
  vocab.pieces.reserve(size_t(vocab_size));
  vocab.scores.reserve(size_t(vocab_size));
  for (int32_t i = 0; i < vocab_size; ++i) {
    if (left < 8) fail("[format] {}: llama2.c tokenizer: token {}: truncated before its score and length", path, i);
    float score = 0;
    std::memcpy(&score, p, 4);
    p += 4;
    left -= 4;
    int32_t len = 0;
    read_i32(&len);
    if (len < 0 || len > kMaxTokenBytes)
      fail("[format] {}: llama2.c tokenizer: token {}: length {} is outside 0..{}", path, i, len, kMaxTokenBytes);
    if (size_t(len) > left)
      fail("[format] {}: llama2.c tokenizer: token {}: {} bytes run past the end of the file ({} bytes remain)", path,
           i, len, left);
    vocab.pieces.emplace_back(reinterpret_cast<const char*>(p), size_t(len));
    vocab.scores.push_back(score);
    p += len;
    left -= size_t(len);
  }
  return vocab;
}

}  // namespace loom::format
