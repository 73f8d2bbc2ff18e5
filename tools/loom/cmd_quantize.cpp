// loom quantize: rewrite a model's weight matrices in a smaller type, with
// the usual mix that keeps the most sensitive tensors at more bits.
#include <cstdio>

#include "commands.h"
#include "loom/core/error.h"
#include "loom/model/export.h"
#include "loom/model/quantize_mix.h"

namespace loom::cli {

namespace {

struct QuantizeArgs {
  std::string input, output, type;
  bool pure = false;
};

void quantize(const QuantizeArgs& a) {
  DType t;
  LOOM_CHECK(parse_dtype(a.type, &t) && (t == DType::Q8_0 || t == DType::Q4_0 || t == DType::Q4_K ||
                                         t == DType::Q6_K || t == DType::F16 || t == DType::BF16 || t == DType::F32),
             "[cli] --type must be q8_0, q4_0, q4_k, q6_k, f16, bf16 or f32, got '{}'", a.type);
  auto src = model::ModelSource::open(a.input);
  const auto& m = src->metadata();
  const std::string arch = m.get_string("general.architecture", "");
  const int64_t n_layer = arch.empty() ? 0 : m.get_int(arch + ".block_count", 0);
  bool has_output = false;
  for (const auto& s : src->tensors()) has_output = has_output || s.name == "output.weight";
  model::ExportOptions o;
  o.type = t;
  o.type_for = model::quantize_mix(t, n_layer, !has_output, a.pure);
  // Report the mix so the user sees what went where.
  size_t in_bytes = 0, out_bytes = 0;
  for (const auto& s : src->tensors()) {
    const DType to = model::export_type(s, o);
    in_bytes += s.nbytes;
    out_bytes += row_bytes(to, s.shape[-1]) * size_t(s.shape.numel() / s.shape[-1]);
    if (s.shape.rank >= 2 && to != t) std::fprintf(stderr, "  %-32s -> %s\n", s.name.c_str(), std::string(name(to)).c_str());
  }
  model::write_gguf(*src, {}, o, a.output);
  std::fprintf(stderr, "wrote %s: %.1f MiB -> %.1f MiB (%s%s)\n", a.output.c_str(), double(in_bytes) / (1 << 20),
               double(out_bytes) / (1 << 20), std::string(name(t)).c_str(), a.pure ? ", pure" : "");
}

}  // namespace

void add_quantize(CLI::App& app) {
  auto a = std::make_shared<QuantizeArgs>();
  CLI::App* c = app.add_subcommand("quantize", "Convert a model's weight matrices to a smaller type (GGUF to GGUF)");
  c->add_option("INPUT", a->input, "Model to read (GGUF, llama2.c, or a Hugging Face folder)")->required();
  c->add_option("OUTPUT", a->output, "GGUF file to write")->required();
  c->add_option("--type", a->type, "q8_0, q4_0, q4_k, q6_k, f16, bf16 or f32")->required();
  c->add_flag("--pure", a->pure,
              "Every matrix gets --type (default: the output projection keeps 6 bits for 4-bit types, and q4_k "
              "gives some layers' attn_v/ffn_down q6_k)");
  c->callback([a] { quantize(*a); });
}

}  // namespace loom::cli
