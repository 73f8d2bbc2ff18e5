// Which type each tensor of a model gets when it is quantized, following the
// usual mixes: the output projection (and a tied embedding, which serves as
// it) keeps more bits, as do the value and down projections of some layers
// for 4-bit K-quants; rows that do not split into whole blocks fall back to
// a type whose blocks fit.
//
//   model::ExportOptions o{.type = DType::Q4_K};
//   o.type_for = model::quantize_mix(DType::Q4_K, n_layer);
#pragma once

#include <functional>

#include "loom/core/dtype.h"
#include "loom/model/source.h"

namespace loom::model {

// `pure`: every matrix gets `target` (where its rows allow).
std::function<DType(const SourceTensor&, DType)> quantize_mix(DType target, int64_t n_layer, bool tied_output,
                                                              bool pure);

}  // namespace loom::model
