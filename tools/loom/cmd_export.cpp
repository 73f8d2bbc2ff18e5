// loom export: write a model with LoRA adapters merged into its weights as
// one GGUF file (W + (alpha / r) B A, then converted like `loom convert --type`).
//
//   loom export -m base.gguf --merge-lora run/step-000200 -o merged.gguf --type q8_0
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>

#include "commands.h"
#include "loom/core/error.h"
#include "loom/format/gguf.h"
#include "loom/format/llama2c.h"
#include "loom/model/export.h"
#include "loom/model/lora.h"
#include "loom/tokenizer/export.h"

namespace loom::cli {

namespace {

namespace fs = std::filesystem;

struct ExportArgs {
  std::string model, output, type, tokenizer;
  std::vector<std::string> lora;
};

// A llama2.c model carries no tokenizer: --tokenizer, else tok<V>.bin or
// tokenizer.bin beside the model (as `loom run` looks).
model::MetadataList llama2c_tokenizer(const ExportArgs& a, const model::ModelSource& src) {
  const auto vocab = int32_t(src.metadata().get_int("llama.vocab_size", 0));
  std::string path = a.tokenizer;
  const fs::path dir = fs::path(a.model).parent_path();
  for (const fs::path& p : {dir / fmt::format("tok{}.bin", vocab), dir / "tokenizer.bin"})
    if (path.empty() && fs::is_regular_file(p)) path = p.string();
  LOOM_CHECK(!path.empty(), "[cli] {}: a llama2.c model needs its tokenizer: --tokenizer FILE (looked for tok{}.bin "
             "and tokenizer.bin beside it)", a.model, vocab);
  return tokenizer::llama2c_gguf_metadata(format::read_llama2c_vocab(path, vocab));
}

void export_model(const ExportArgs& a) {
  LOOM_CHECK(!a.lora.empty(), "[cli] give the adapters to merge: --merge-lora DIR");
  LOOM_CHECK(a.output.ends_with(".gguf"), "[cli] -o {}: loom export writes a GGUF file (OUT.gguf)", a.output);
  auto src = model::ModelSource::open(a.model.empty() ? default_model_path() : a.model);
  for (const std::string& dir : a.lora) src->merge_lora(model::LoraAdapter::open(dir));
  model::ExportOptions o;
  if (!a.type.empty()) {
    o.type = parse_weight_type(a.type);
  }
  const model::MetadataList extra = src->kind() == model::ModelSource::Kind::Llama2c
                                        ? llama2c_tokenizer(a, *src)
                                        : hf_folder_tokenizer_metadata(a.model, *src);
  model::write_gguf(*src, extra, o, a.output);
  std::fprintf(stderr, "wrote %s (%zu adapter(s) merged)\n", a.output.c_str(), a.lora.size());
}

}  // namespace

void add_export(CLI::App& app) {
  auto a = std::make_shared<ExportArgs>();
  CLI::App* c = app.add_subcommand("export", "Write a model with LoRA adapters merged into its weights as GGUF");
  c->add_option("-m,--model", a->model,
                "Base model: GGUF file, llama2.c .bin, or Hugging Face folder (default: the built-in model)");
  c->add_option("--merge-lora", a->lora, "PEFT LoRA adapter folder to merge (repeatable)")->required();
  c->add_option("-o,--output", a->output, "GGUF file to write")->required();
  c->add_option("--type", a->type, "Type of the weight matrices: f32, f16, bf16, q8_0, q4_0 (default: keep; merged "
                "matrices are f32)");
  c->add_option("--tokenizer", a->tokenizer, "llama2.c models: their tokenizer .bin (default: found beside the model)");
  c->callback([a] { export_model(*a); });
}

}  // namespace loom::cli
