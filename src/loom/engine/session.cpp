#include "loom/engine/session.h"

#include <chrono>
#include <filesystem>

#include "loom/core/error.h"
#include "loom/format/gguf.h"
#include "loom/format/llama2c.h"
#include "loom/model/lora.h"

namespace loom::engine {

namespace {
constexpr int kBlockSize = 16;
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

std::unique_ptr<tokenizer::Tokenizer> load_tokenizer(const model::ModelSource& source,
                                                     const std::string& tokenizer_path) {
  if (source.kind() == model::ModelSource::Kind::Gguf && tokenizer_path.empty())
    return tokenizer::from_gguf(source.metadata());
  if (source.kind() == model::ModelSource::Kind::HuggingFace && tokenizer_path.empty())
    return tokenizer::load(source.path());
  // Any tokenizer file or folder (GGUF, tokenizer.model, tokenizer.json,
  // llama2.c .bin, ...), recognised by its content.
  if (!tokenizer_path.empty()) return tokenizer::load(tokenizer_path);
  const int64_t vocab = source.metadata().get_int("llama.vocab_size", 0);
  std::string path = tokenizer_path;
  if (path.empty()) {
    const auto dir = std::filesystem::path(source.path()).parent_path();
    for (const auto& candidate : {dir / ("tok" + std::to_string(vocab) + ".bin"), dir / "tokenizer.bin"}) {
      if (std::filesystem::is_regular_file(candidate)) {
        path = candidate.string();
        break;
      }
    }
    if (path.empty())
      fail("[engine] {}: a llama2.c model needs its tokenizer; pass --tokenizer FILE (looked for tok{}.bin and "
           "tokenizer.bin beside the model)",
           source.path(), vocab);
  }
  return tokenizer::from_llama2c(format::read_llama2c_vocab(path, int32_t(vocab)));
}

Session::Session(const SessionOptions& o) {
  backend_ = backend::create(o.backend, {.threads = o.threads});
  source_ = model::ModelSource::open(o.model_path);
  for (const std::string& dir : o.lora) source_->merge_lora(model::LoraAdapter::open(dir));
  if (o.quantize) source_->quantize_weights(*o.quantize);
  model_ = model::load(*source_, *backend_);
  tokenizer_ = load_tokenizer(*source_, o.tokenizer_path);
  const auto& c = model_->config();
  LOOM_CHECK(tokenizer_->vocab_size() <= c.n_vocab,
             "[engine] {}: the tokenizer has {} tokens but the model only {}; is it the right tokenizer?",
             o.model_path, tokenizer_->vocab_size(), c.n_vocab);
  capacity_ = o.ctx_size > 0 ? o.ctx_size : c.n_ctx_train;
  LOOM_CHECK(capacity_ > 0 && capacity_ <= (int64_t(1) << 24), "[engine] context size {} is out of range", capacity_);
  const int64_t blocks = (capacity_ + kBlockSize - 1) / kBlockSize;
  kv_ = std::make_unique<model::KvCache>(*backend_, c, blocks, kBlockSize, o.kv_type);
  runner_ = std::make_unique<model::Runner>(*model_, *backend_, *kv_);
  batch_size_ = std::max<int64_t>(1, o.batch_size);
  batch_.n_seqs = 1;
  batch_.block_table.resize(size_t(blocks));
  for (int64_t b = 0; b < blocks; ++b) batch_.block_table[size_t(b)] = int32_t(b);
}

Session::~Session() = default;

void Session::reset() {
  position_ = 0;
  history_.clear();
}

void Session::rewind(int64_t n_tokens) {
  LOOM_CHECK(n_tokens >= 0 && n_tokens <= position_,
             "[engine] rewind to {} tokens: the sequence has {} (rewind keeps a prefix of what was fed)", n_tokens,
             position_);
  // Cache entries past the new end are simply overwritten by the next feed:
  // attention only reads positions up to each token's own.
  position_ = n_tokens;
  history_.resize(size_t(n_tokens));
}

std::span<const float> Session::feed(std::span<const int32_t> tokens) {
  LOOM_CHECK(!tokens.empty(), "[engine] feed: no tokens");
  LOOM_CHECK(position_ + int64_t(tokens.size()) <= capacity_,
             "[engine] the context is full ({} tokens); use a larger --ctx-size or start over", capacity_);
  std::span<const float> logits;
  for (size_t done = 0; done < tokens.size();) {
    const size_t n = std::min(tokens.size() - done, size_t(batch_size_));
    batch_.tokens.assign(tokens.begin() + long(done), tokens.begin() + long(done + n));
    batch_.positions.resize(n);
    for (size_t i = 0; i < n; ++i) batch_.positions[i] = int32_t(position_ + int64_t(i));
    batch_.seq_ids.assign(n, 0);
    batch_.out_rows.assign(1, int32_t(n - 1));
    logits = runner_->forward(batch_);
    position_ += int64_t(n);
    done += n;
  }
  history_.insert(history_.end(), tokens.begin(), tokens.end());
  return logits;
}

GenerateStats Session::generate(std::span<const int32_t> prompt, const GenerateOptions& o,
                                const std::function<bool(int32_t)>& on_token) {
  GenerateStats st;
  sample::Sampler sampler(o.sampling);
  auto t0 = std::chrono::steady_clock::now();
  std::span<const float> logits = feed(prompt);
  st.prompt_tokens = int64_t(prompt.size());
  st.prompt_seconds = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  const int64_t n_vocab = model_->config().n_vocab;
  const int64_t limit = o.n_predict < 0 ? capacity_ : o.n_predict;
  while (st.generated_tokens < limit) {
    const int32_t id = sampler.sample(logits.subspan(0, size_t(n_vocab)), history_);
    if (o.stop_at_eog && tokenizer_->is_eog(id)) {
      st.stopped_by_eog = true;
      break;
    }
    ++st.generated_tokens;
    if (!on_token(id)) break;
    if (st.generated_tokens == limit || position_ >= capacity_) break;
    logits = feed(std::span<const int32_t>(&id, 1));
  }
  st.generate_seconds = seconds_since(t0);
  return st;
}

}  // namespace loom::engine
