// Binding file tensors to backend tensors, with the checks every architecture
// needs: the tensor exists, has the expected shape, and a dtype loom can use.
// Every storage block of the source (file mappings, owned buffers) is
// imported into the backend once; on host backends that is zero-copy.
//
//   WeightBinder w(source, backend);
//   Tensor wq = w.get("blk.0.attn_q.weight", {Hq * D, C});
//   Tensor bq = w.optional("blk.0.attn_q.bias", {Hq * D});   // undefined if absent
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "loom/backend/backend.h"
#include "loom/model/source.h"

namespace loom::model {

class WeightBinder {
 public:
  WeightBinder(const ModelSource& source, backend::Backend& backend);

  // The tensor `name` with shape `shape`; throws naming the file and tensor.
  Tensor get(const std::string& name, Shape shape) const;
  // Same, or an undefined Tensor if the file does not have it.
  Tensor optional(const std::string& name, Shape shape) const;
  bool has(const std::string& name) const { return source_.find_tensor(name) != nullptr; }

 private:
  const ModelSource& source_;
  std::vector<std::shared_ptr<Buffer>> buffers_;  // one per source storage
};

}  // namespace loom::model
