// The CPU backend: the same ops as the reference backend, multithreaded
// through loom's ThreadPool, float32 accumulation, no allocation per run.
#pragma once

#include <memory>

#include "loom/backend/backend.h"

namespace loom::backend {

std::unique_ptr<Backend> make_cpu_backend(const BackendOptions& options);

}  // namespace loom::backend
