#include "loom/model/quantize_mix.h"

#include <cstdio>
#include <string>

namespace loom::model {

namespace {

bool fits(DType t, int64_t cols) { return cols % traits(t).block_size == 0; }

// The closest type at least as precise as `t` whose blocks split a row of `cols`.
DType fallback(DType t, int64_t cols) {
  if (fits(t, cols)) return t;
  if ((t == DType::Q4_K || t == DType::Q4_0) && fits(DType::Q8_0, cols)) return DType::Q8_0;
  if (t == DType::Q6_K && fits(DType::Q8_0, cols)) return DType::Q8_0;
  return DType::F16;
}

int layer_of(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return -1;
  return std::atoi(name.c_str() + 4);
}

bool ends_with(const std::string& s, const char* suffix) {
  const std::string x(suffix);
  return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
}

}  // namespace

std::function<DType(const SourceTensor&, DType)> quantize_mix(DType target, int64_t n_layer, bool tied_output,
                                                              bool pure) {
  return [=](const SourceTensor& t, DType) {
    const int64_t cols = t.shape[-1];
    if (pure) return fallback(target, cols);
    const bool low_bits = target == DType::Q4_0 || target == DType::Q4_K;
    // The output projection decides every token: 6 bits for the 4-bit mixes.
    const bool is_output = t.name == "output.weight" || (tied_output && t.name == "token_embd.weight");
    if (low_bits && is_output) return fallback(DType::Q6_K, cols);
    // 4-bit K mixes give the value and down projections more bits in the
    // first and last eighth of the layers and every third layer between.
    if (target == DType::Q4_K && (ends_with(t.name, "attn_v.weight") || ends_with(t.name, "ffn_down.weight"))) {
      const int64_t l = layer_of(t.name);
      const bool more = l < n_layer / 8 || l >= 7 * n_layer / 8 || (l - n_layer / 8) % 3 == 2;
      if (more) return fallback(DType::Q6_K, cols);
    }
    return fallback(target, cols);
  };
}

}  // namespace loom::model
