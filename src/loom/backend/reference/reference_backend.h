// The reference backend: plain scalar C++ with float64 accumulation, one
// thread, written for clarity. It defines what every op means; every other
// backend is tested against it op by op.
#pragma once

#include <memory>

#include "loom/backend/backend.h"

namespace loom::backend {

std::unique_ptr<Backend> make_reference_backend(const BackendOptions& options);

}  // namespace loom::backend
