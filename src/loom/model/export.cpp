#include "loom/model/export.h"

#include <fmt/format.h>

#include "loom/core/error.h"
#include "loom/quant/quantize.h"

namespace loom::model {

DType export_type(const SourceTensor& t, const ExportOptions& o) {
  LOOM_CHECK(t.dtype.has_value(), "[model] tensor '{}' has a type loom cannot convert", t.name);
  if (!o.type) return *t.dtype;
  if (t.shape.rank < 2) return DType::F32;
  const int bs = traits(*o.type).block_size;
  return t.shape[-1] % bs == 0 ? *o.type : DType::F16;
}

void write_gguf(const ModelSource& source, const std::vector<std::pair<std::string, format::GgufValue>>& extra,
                const ExportOptions& o, const std::string& path) {
  format::GgufWriter w;
  for (const auto& [k, v] : source.metadata().entries()) w.set(k, v);
  for (const auto& [k, v] : extra) w.set(k, v);
  std::vector<std::vector<std::byte>> converted;  // owned data for tensors that change type
  converted.reserve(source.tensors().size());
  for (const SourceTensor& t : source.tensors()) {
    const DType to = export_type(t, o);
    if (to == *t.dtype) {
      w.add_tensor(t.name, to, t.shape, t.data);
      continue;
    }
    const int64_t cols = t.shape[-1], rows = t.shape.numel() / std::max<int64_t>(cols, 1);
    std::vector<float> row(static_cast<size_t>(cols));
    std::vector<std::byte> out(row_bytes(to, cols) * size_t(rows));
    const size_t in_rb = row_bytes(*t.dtype, cols), out_rb = row_bytes(to, cols);
    for (int64_t r = 0; r < rows; ++r) {
      dequantize_row(*t.dtype, t.data + size_t(r) * in_rb, row.data(), cols);
      quant::quantize_row(to, row.data(), out.data() + size_t(r) * out_rb, cols);
    }
    converted.push_back(std::move(out));
    w.add_tensor(t.name, to, t.shape, converted.back().data());
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
