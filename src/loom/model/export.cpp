#include "loom/model/export.h"

#include <fmt/format.h>

#include <memory>

#include "loom/core/error.h"
#include "loom/model/hf_names.h"
#include "loom/quant/quantize.h"

namespace loom::model {

DType export_type(const SourceTensor& t, const ExportOptions& o) {
  LOOM_CHECK(t.dtype.has_value(), "[model] tensor '{}' has type {}, which loom cannot convert", t.name, t.type_name);
  if (!o.type) return *t.dtype;
  if (t.shape.rank < 2) return DType::F32;
  const int bs = traits(*o.type).block_size;
  const DType rule = t.shape[-1] % bs == 0 ? *o.type : DType::F16;
  return o.type_for ? o.type_for(t, rule) : rule;
}

namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

void write_gguf(const ModelSource& source, const MetadataList& extra, const ExportOptions& o,
                const std::string& path) {
  const format::Metadata& m = source.metadata();
  const std::string arch = m.get_string("general.architecture", "");
  const std::string style_key = arch + ".rope.style";
  // Q/K rows in Hugging Face order go back to llama.cpp's adjacent-pair order.
  const bool permute = hf_rope_is_permuted_in_gguf(arch) && m.get_string(style_key, "") == "neox";
  format::GgufWriter w;
  for (const auto& [k, v] : m.entries())
    if (!(permute && k == style_key)) w.set(k, v);
  for (const auto& [k, v] : extra) w.set(k, v);
  std::vector<std::vector<std::byte>> owned;  // data for tensors that are permuted or change type
  owned.reserve(2 * source.tensors().size());
  for (const SourceTensor& t : source.tensors()) {
    if (!t.dtype) {
      // A type loom cannot compute with still copies through unchanged.
      LOOM_CHECK(!o.type && t.ggml_type != kNoGgmlType,
                 "[model] {}: tensor '{}' has type {}, which loom cannot convert; convert without --type, or drop it",
                 source.path(), t.name, t.type_name);
      w.add_tensor_raw(t.name, t.ggml_type, t.shape, t.data, t.nbytes);
      continue;
    }
    const std::byte* data = t.data;
    const bool is_q = t.name.find(".attn_q.") != std::string::npos, is_k = t.name.find(".attn_k.") != std::string::npos;
    if (permute && (is_q || is_k) && (ends_with(t.name, ".weight") || ends_with(t.name, ".bias"))) {
      const int64_t heads = is_q ? m.get_int(arch + ".attention.head_count")
                                 : m.get_int(arch + ".attention.head_count_kv", m.get_int(arch + ".attention.head_count"));
      const int64_t rows = t.shape[0];
      owned.emplace_back(t.nbytes);
      permute_qk_rows(t.data, owned.back().data(), heads, rows, t.nbytes / size_t(rows), /*to_gguf=*/true);
      data = owned.back().data();
    }
    const DType to = export_type(t, o);
    if (to == *t.dtype) {
      w.add_tensor(t.name, to, t.shape, data);
      continue;
    }
    const int64_t cols = t.shape[-1], rows = t.shape.numel() / std::max<int64_t>(cols, 1);
    std::vector<float> row(static_cast<size_t>(cols));
    std::vector<std::byte> out(row_bytes(to, cols) * size_t(rows));
    const size_t in_rb = row_bytes(*t.dtype, cols), out_rb = row_bytes(to, cols);
    for (int64_t r = 0; r < rows; ++r) {
      dequantize_row(*t.dtype, data + size_t(r) * in_rb, row.data(), cols);
      quant::quantize_row(to, row.data(), out.data() + size_t(r) * out_rb, cols);
    }
    owned.push_back(std::move(out));
    w.add_tensor(t.name, to, t.shape, owned.back().data());
  }
  // llama.cpp's file type ids: 0 all F32, 1 mostly F16, 2 mostly Q4_0, 7 mostly Q8_0, 32 mostly BF16.
  if (o.type) {
    const DType t = *o.type;
    const uint32_t ft = t == DType::F32 ? 0 : t == DType::F16 ? 1 : t == DType::Q4_0 ? 2 : t == DType::Q8_0 ? 7 : 32;
    w.set("general.file_type", format::GgufValue::make_uint32(ft));
  }
  w.write(path);
}

}  // namespace loom::model
