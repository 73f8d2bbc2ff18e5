#include "loom/model/registry.h"

#include "loom/core/error.h"

namespace loom::model {

namespace {
const Registry& registry() {
  static const Registry r = [] {
    Registry reg;
    register_llama(reg);
    register_qwen2(reg);
    register_qwen2moe(reg);
    register_deepseek(reg);
    register_chatglm(reg);
    register_glm4(reg);
    register_telechat2(reg);
    return reg;
  }();
  return r;
}
}  // namespace

const Registry::Factory* Registry::find(const std::string& arch) const {
  for (const auto& [name, f] : entries_)
    if (name == arch) return &f;
  return nullptr;
}

std::vector<std::string> Registry::names() const {
  std::vector<std::string> out;
  for (const auto& [name, f] : entries_) out.push_back(name);
  return out;
}

std::vector<std::string> architectures() { return registry().names(); }

std::unique_ptr<Model> load(const ModelSource& source, backend::Backend& backend) {
  const std::string arch = source.metadata().get_string("general.architecture");
  const Registry::Factory* f = registry().find(arch);
  if (!f) {
    std::string known;
    for (const auto& n : architectures()) known += (known.empty() ? "" : ", ") + n;
    fail("[model] {}: unknown architecture '{}'; loom supports: {}", source.path(), arch, known);
  }
  return (*f)(source, backend);
}

}  // namespace loom::model
