// OpenAI request bodies -> engine requests. Runs on the HTTP threads: every
// field is type- and range-checked (a bad one is a 400 naming it), chat
// messages go through the model's chat template and the tokenizer here, and
// response_format becomes a JSON constraint, so the engine thread only ever
// sees token ids.
//
//   RequestParser parser(model_info(engine), {.model_names = {"stories"}});
//   Job job = parser.chat(nlohmann::json::parse(body));   // throws HttpError
//   engine.submit(std::move(job.request), on_event);
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "loom/engine/engine.h"
#include "loom/tokenizer/chat_template.h"

namespace loom::serve {

enum class Endpoint { Chat, Completion };

// One parsed request: what the engine runs, and how the answer is shaped.
struct Job {
  Endpoint endpoint = Endpoint::Chat;
  engine::Request request;
  std::string model;           // echoed in the response
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool logprobs = false;       // chat: "logprobs": true; completions: "logprobs": k
  int top_logprobs = 0;
};

// What the parser needs of the served model. The Engine provides it
// (model_info); tests build one from a tokenizer and a file's metadata, so
// parsing is tested without loading weights.
struct ModelInfo {
  const tokenizer::Tokenizer* tokenizer = nullptr;
  const format::Metadata* metadata = nullptr;  // chat template, BOS/EOS text
  std::string model_path;                      // a folder may hold chat_template.jinja
  int64_t ctx_size = 0;
  std::function<std::shared_ptr<const sample::TokenTable>()> token_table;  // for JSON constraints
};

// The served model as the engine has it (the engine must outlive the parser).
ModelInfo model_info(const engine::Engine& engine);

struct ParserOptions {
  // Names accepted in "model"; the first is the id /v1/models lists and the
  // one echoed when a request names none.
  std::vector<std::string> model_names;
  std::string chat_template;   // a built-in name or file overriding the model's own ("": the model's)
  double timeout_seconds = 0;  // per request, from submission to the last token (0: none)
  // Sampling for fields a request leaves out. OpenAI's defaults: temperature
  // 1, top_p 1, and no top_k / min_p (those are not in its API).
  sample::SamplerParams defaults{.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f};
};

class RequestParser {
 public:
  RequestParser(ModelInfo model, ParserOptions options);

  Job chat(const nlohmann::json& body) const;        // POST /v1/chat/completions
  Job completion(const nlohmann::json& body) const;  // POST /v1/completions

  const std::string& model_id() const { return options_.model_names.front(); }
  const ParserOptions& options() const { return options_; }
  const ModelInfo& model() const { return model_; }
  const tokenizer::ChatTemplate& chat_template() const { return template_; }

 private:
  void check_model(const nlohmann::json& body, Job& job) const;
  void parse_common(const nlohmann::json& body, Job& job) const;
  void set_limits(const nlohmann::json& body, Job& job, const char* prompt_param) const;
  std::shared_ptr<const sample::Constraint> constraint_for(const nlohmann::json& response_format) const;

  ModelInfo model_;
  ParserOptions options_;
  tokenizer::ChatTemplate template_;
  tokenizer::ChatContext chat_context_;
  std::vector<int32_t> bos_prefix_;  // what add_bos puts in front of a prompt (BOS, GLM's [gMASK] sop)
  // Compiled constraints by schema text: a client repeating one schema (the
  // usual case) pays for compiling it once. Bounded; see constraint_for().
  mutable std::mutex constraints_mu_;
  mutable std::map<std::string, std::shared_ptr<const sample::Constraint>> constraints_;
};

}  // namespace loom::serve
