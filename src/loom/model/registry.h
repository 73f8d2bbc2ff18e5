// The one place where architectures are registered: architecture name (GGUF
// `general.architecture`) -> factory. Each architecture file defines one
// register_<arch> function; registry.cpp calls them all.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "loom/model/model.h"

namespace loom::model {

class Registry {
 public:
  using Factory = std::function<std::unique_ptr<Model>(const ModelSource&, backend::Backend&)>;
  void add(std::string arch, Factory f) { entries_.emplace_back(std::move(arch), std::move(f)); }
  const Factory* find(const std::string& arch) const;
  std::vector<std::string> names() const;

 private:
  std::vector<std::pair<std::string, Factory>> entries_;
};

void register_llama(Registry& r);

}  // namespace loom::model
