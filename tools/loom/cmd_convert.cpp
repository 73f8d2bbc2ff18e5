// loom convert: write a model (GGUF, llama2.c, or a Hugging Face folder) as
// GGUF with llama.cpp's names and keys, optionally with its weight matrices
// converted to f16, q8_0 or q4_0; or (--to hf) as a Hugging Face folder.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "commands.h"
#include "loom/core/error.h"
#include "loom/format/gguf.h"
#include "loom/format/llama2c.h"
#include "loom/model/export.h"
#include "loom/tokenizer/bpe.h"
#include "loom/tokenizer/export.h"
#include "loom/tokenizer/tokenizer.h"

namespace loom::cli {

namespace {

struct ConvertArgs {
  std::string input, output, type, tokenizer, to = "gguf";
  int64_t shard_mb = 0;
};

// Tokenizer metadata for the output: from --tokenizer (a GGUF's tokenizer.*
// keys, or a llama2.c tokenizer .bin), else what the model itself carries.
model::MetadataList tokenizer_metadata(const ConvertArgs& a, const model::ModelSource& src) {
  if (!a.tokenizer.empty()) {
    if (format::GgufFile::has_magic(*format::MappedFile::open(a.tokenizer))) {
      model::MetadataList kv;
      const auto file = format::GgufFile::open(a.tokenizer);  // outlives the loop over its entries
      for (const auto& [k, v] : file->metadata().entries())
        if (k.rfind("tokenizer.", 0) == 0) kv.emplace_back(k, v);
      LOOM_CHECK(!kv.empty(), "[cli] {}: this GGUF file has no tokenizer.* metadata", a.tokenizer);
      return kv;
    }
    const auto vocab_size = int32_t(src.metadata().get_int("llama.vocab_size", 0));
    LOOM_CHECK(vocab_size > 0, "[cli] {}: --tokenizer takes a GGUF file, or a llama2.c tokenizer for a llama model",
               a.tokenizer);
    return tokenizer::llama2c_gguf_metadata(format::read_llama2c_vocab(a.tokenizer, vocab_size));
  }
  LOOM_CHECK(src.kind() != model::ModelSource::Kind::Llama2c,
             "[cli] {}: converting a llama2.c model needs its tokenizer: --tokenizer FILE", a.input);
  return a.to == "gguf" ? hf_folder_tokenizer_metadata(a.input, src) : model::MetadataList{};
}

void convert(const ConvertArgs& a) {
  LOOM_CHECK(a.to == "gguf" || a.to == "hf", "[cli] --to must be gguf or hf, got '{}'", a.to);
  auto src = model::ModelSource::open(a.input);
  model::ExportOptions o;
  if (!a.type.empty()) {
    o.type = parse_weight_type(a.type);
  }
  const model::MetadataList extra = tokenizer_metadata(a, *src);
  if (a.to == "hf") {
    LOOM_CHECK(a.shard_mb >= 0, "[cli] --shard-mb must be positive");
    o.shard_bytes = size_t(a.shard_mb) << 20;
    for (const auto& note : model::write_hf(*src, extra, o, a.output)) std::fprintf(stderr, "note: %s\n", note.c_str());
  } else {
    model::write_gguf(*src, extra, o, a.output);
    const bool has_tokenizer = src->metadata().find("tokenizer.ggml.model") != nullptr || !extra.empty();
    if (!has_tokenizer)
      std::fprintf(stderr,
                   "note: %s has no tokenizer metadata; give --tokenizer FILE (a GGUF or llama2.c tokenizer) to "
                   "embed one, or pass it to `loom run --tokenizer`\n",
                   a.output.c_str());
  }
  std::fprintf(stderr, "wrote %s\n", a.output.c_str());
}

}  // namespace

model::MetadataList hf_folder_tokenizer_metadata(const std::string& input, const model::ModelSource& src) {
  if (!std::filesystem::is_directory(input) || src.metadata().find("tokenizer.ggml.model") != nullptr) return {};
  std::unique_ptr<tokenizer::Tokenizer> tok;
  try {
    tok = tokenizer::load(input);
  } catch (const Error&) {
    return {};  // no tokenizer files here: the note after writing says so
  }
  if (dynamic_cast<const tokenizer::BpeTokenizer*>(tok.get())) return tokenizer::bpe_gguf_metadata(*tok);
  return {};
}

void add_convert(CLI::App& app) {
  auto a = std::make_shared<ConvertArgs>();
  CLI::App* c = app.add_subcommand(
      "convert", "Convert a model (GGUF, llama2.c or Hugging Face folder) to GGUF, or to a Hugging Face folder");
  c->add_option("INPUT", a->input, "Model to read: GGUF, llama2.c .bin, or Hugging Face folder")->required();
  c->add_option("-o,--output", a->output, "GGUF file to write (or folder, with --to hf)")->required();
  c->add_option("--to", a->to, "Output format: gguf or hf (a Hugging Face folder)")->capture_default_str();
  c->add_option("--type", a->type,
                "Type of the weight matrices: f32, f16, bf16, q8_0, q4_0 (--to hf: f32, f16, bf16; default: keep)");
  c->add_option("--tokenizer", a->tokenizer,
                "Tokenizer to embed: a llama2.c tokenizer .bin (llama2.c inputs) or a GGUF with tokenizer metadata");
  c->add_option("--shard-mb", a->shard_mb, "--to hf: split the weights into shards of about this many MiB");
  c->callback([a] { convert(*a); });
}

}  // namespace loom::cli
