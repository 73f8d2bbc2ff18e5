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

// One per architecture file.
void register_llama(Registry& r);      // llama.cpp: Llama and Mixtral-style MoE
void register_qwen2(Registry& r);      // qwen2.cpp
void register_qwen2moe(Registry& r);   // qwen2moe.cpp
void register_deepseek(Registry& r);   // deepseek.cpp
void register_chatglm(Registry& r);    // chatglm.cpp: ChatGLM2/3, GLM-4-9B
void register_glm4(Registry& r);       // glm4.cpp: GLM-4-0414 with post-norms
void register_telechat2(Registry& r);  // telechat2.cpp

}  // namespace loom::model
