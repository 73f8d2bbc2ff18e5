// loom convert: write a model (GGUF or llama2.c) as GGUF, optionally with its
// weight matrices converted to f16, q8_0 or q4_0.
#include <cstdio>

#include "commands.h"
#include "loom/core/error.h"
#include "loom/format/llama2c.h"
#include "loom/model/export.h"
#include "loom/tokenizer/export.h"

namespace loom::cli {

namespace {

struct ConvertArgs {
  std::string input, output, type, tokenizer;
};

void convert(const ConvertArgs& a) {
  auto src = model::ModelSource::open(a.input);
  model::ExportOptions o;
  if (!a.type.empty()) {
    DType t;
    LOOM_CHECK(parse_dtype(a.type, &t) && (t == DType::F32 || t == DType::F16 || t == DType::BF16 ||
                                           t == DType::Q8_0 || t == DType::Q4_0),
               "[cli] --type must be f32, f16, bf16, q8_0 or q4_0, got '{}'", a.type);
    o.type = t;
  }
  std::vector<std::pair<std::string, format::GgufValue>> extra;
  if (src->kind() == model::ModelSource::Kind::Llama2c) {
    LOOM_CHECK(!a.tokenizer.empty(), "[cli] {}: converting a llama2.c model needs its tokenizer: --tokenizer FILE",
               a.input);
    const auto vocab_size = int32_t(src->metadata().get_int("llama.vocab_size"));
    extra = tokenizer::llama2c_gguf_metadata(format::read_llama2c_vocab(a.tokenizer, vocab_size));
  }
  model::write_gguf(*src, extra, o, a.output);
  std::fprintf(stderr, "wrote %s\n", a.output.c_str());
}

}  // namespace

void add_convert(CLI::App& app) {
  auto a = std::make_shared<ConvertArgs>();
  CLI::App* c = app.add_subcommand("convert", "Convert a model (GGUF or llama2.c) to GGUF");
  c->add_option("INPUT", a->input, "Model to read: GGUF or llama2.c .bin")->required();
  c->add_option("-o,--output", a->output, "GGUF file to write")->required();
  c->add_option("--type", a->type, "Type of the weight matrices: f32, f16, bf16, q8_0, q4_0 (default: keep)");
  c->add_option("--tokenizer", a->tokenizer, "llama2.c tokenizer .bin to embed (llama2.c inputs)");
  c->callback([a] { convert(*a); });
}

}  // namespace loom::cli
