// The `loom` command: one file per subcommand, each adding itself to the app.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "loom/core/dtype.h"
#include "loom/model/export.h"

namespace loom::cli {

void add_run(CLI::App& app);
void add_info(CLI::App& app);
void add_convert(CLI::App& app);
void add_tokenize(CLI::App& app);
void add_chat_format(CLI::App& app);
void add_chat(CLI::App& app);
void add_bench(CLI::App& app);
void add_quantize(CLI::App& app);
void add_serve(CLI::App& app);
void add_tokenizer(CLI::App& app);
void add_train(CLI::App& app);
void add_export(CLI::App& app);

// The model used when no -m is given: $LOOM_MODEL, else the default model the
// build produces (build/models/default.gguf next to build/bin/loom).
std::string default_model_path();

// The weight type of `loom convert --type` / `loom export --type` (f32, f16,
// bf16, q8_0, q4_0); throws naming the accepted ones.
DType parse_weight_type(const std::string& s);

// The tokenizer.ggml.* keys for a GGUF written from a Hugging Face folder
// whose tokenizer is byte-level BPE (tokenizer.json, or vocab.json +
// merges.txt); empty for other inputs or a model that carries its own.
model::MetadataList hf_folder_tokenizer_metadata(const std::string& input, const model::ModelSource& src);

}  // namespace loom::cli
