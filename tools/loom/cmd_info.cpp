// loom info: what a model file holds — format, architecture and
// hyper-parameters, every metadata key, every tensor with its type and size.
#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

#include "commands.h"
#include "loom/format/gguf.h"
#include "loom/model/source.h"

namespace loom::cli {

namespace {

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} {}", b, units[u]) : fmt::format("{:.2f} {}", b, units[u]);
}

void info(const std::string& path, bool all_values) {
  auto src = model::ModelSource::open(path);
  const auto& m = src->metadata();
  std::string out;
  out += fmt::format("file: {}\n", path);
  if (src->kind() == model::ModelSource::Kind::Gguf) {
    const auto gguf = format::GgufFile::parse(src->mapping());
    out += fmt::format("format: GGUF v{} (alignment {})\n", gguf->version(), gguf->alignment());
  } else if (src->kind() == model::ModelSource::Kind::HuggingFace) {
    out += fmt::format("format: Hugging Face folder, {} safetensors file(s) (metadata below is derived from "
                       "config.json, tensors carry their GGUF names)\n",
                       src->storages().size() - size_t(std::count_if(src->storages().begin(), src->storages().end(),
                                                                     [](const auto& s) { return !s.file_backed; })));
  } else {
    out += "format: llama2.c checkpoint (metadata below is derived from its header)\n";
  }
  const std::string arch = m.get_string("general.architecture", "");
  if (!arch.empty()) {
    out += fmt::format("architecture: {}\n", arch);
    out += "hyper-parameters:\n";
    for (const auto& [k, v] : m.entries())
      if (k.rfind(arch + ".", 0) == 0) out += fmt::format("  {} = {}\n", k.substr(arch.size() + 1), v.to_display());
  }
  out += fmt::format("metadata ({} keys):\n", m.entries().size());
  for (const auto& [k, v] : m.entries())
    out += fmt::format("  {} [{}] = {}\n", k,
                       v.is_array() ? fmt::format("{}[{}]", format::gguf_type_name(v.element_type()), v.size())
                                    : std::string(format::gguf_type_name(v.type())),
                       v.to_display(all_values ? size_t(-1) : 8));
  size_t total = 0;
  int64_t params = 0;
  for (const auto& t : src->tensors()) {
    total += t.nbytes;
    params += t.shape.numel();
  }
  out += fmt::format("tensors ({}, {} parameters, {}):\n", src->tensors().size(), params, human_bytes(double(total)));
  for (const auto& t : src->tensors()) {
    const auto* ti = format::ggml_type_info(t.ggml_type);
    const std::string type = t.dtype ? std::string(name(*t.dtype)) : ti ? std::string(ti->name) : t.type_name;
    out += fmt::format("  {:<32} {:<6} {:<16} {} bytes\n", t.name, type, t.shape.str(), t.nbytes);
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
}

}  // namespace

void add_info(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto all = std::make_shared<bool>(false);
  CLI::App* c = app.add_subcommand("info", "Show a model file's architecture, hyper-parameters, metadata and tensors");
  c->add_option("MODEL", *path, "GGUF file, llama2.c checkpoint or Hugging Face folder")->required();
  c->add_flag("--all-values", *all, "Print whole arrays (e.g. every vocabulary token)");
  c->callback([path, all] { info(*path, *all); });
}

}  // namespace loom::cli
