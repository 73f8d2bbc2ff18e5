#include <mutex>

#include "loom/backend/backend.h"
#include "loom/backend/cpu/cpu_backend.h"
#include "loom/backend/reference/reference_backend.h"
#include "loom/core/error.h"
#include "loom/core/thread_pool.h"

namespace loom::backend {

namespace {

struct Registry {
  std::mutex mutex;
  std::vector<std::pair<std::string, BackendFactory>> entries;
};

// Built-in backends are added on first use rather than by static
// initialisers, which a static library link would drop.
Registry& registry() {
  static Registry r;
  static std::once_flag once;
  std::call_once(once, [] {
    r.entries.emplace_back("cpu", [](const BackendOptions& o) { return make_cpu_backend(o); });
    r.entries.emplace_back("reference", [](const BackendOptions& o) { return make_reference_backend(o); });
  });
  return r;
}

}  // namespace

void register_backend(std::string name, BackendFactory factory) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  for (auto& [n, f] : r.entries) {
    if (n == name) {
      f = std::move(factory);
      return;
    }
  }
  r.entries.emplace_back(std::move(name), std::move(factory));
}

std::vector<std::string> backend_names() {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  std::vector<std::string> names;
  for (auto& [n, f] : r.entries) names.push_back(n);
  return names;
}

std::unique_ptr<Backend> create(std::string_view name, const BackendOptions& options) {
  BackendFactory factory;
  {
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    for (auto& [n, f] : r.entries)
      if (n == name) factory = f;
  }
  if (!factory) {
    std::string known;
    for (const auto& n : backend_names()) known += (known.empty() ? "" : ", ") + n;
    fail("[backend] unknown backend '{}'; available: {}", name, known);
  }
  return factory(options);
}

}  // namespace loom::backend
