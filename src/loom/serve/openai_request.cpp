#include "loom/serve/openai_request.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <random>

#include "loom/serve/http_error.h"
#include "loom/tokenizer/tokenizer.h"

namespace loom::serve {

namespace {

using nlohmann::json;

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_float: return "a decimal";
    default: return "an integer";
  }
}

[[noreturn]] void bad_type(const std::string& key, const char* expected, const json& v) {
  throw HttpError(400, fmt::format("Invalid type for '{}': expected {}, but got {} instead.", key, expected, type_name(v)),
                  key, "invalid_type");
}

[[noreturn]] void bad_value(const std::string& key, const std::string& message) {
  throw HttpError(400, fmt::format("Invalid value for '{}': {}", key, message), key, "invalid_value");
}

// The field's value, or nullptr when it is absent or null (OpenAI treats an
// explicit null as "not given").
const json* field(const json& body, const char* key) {
  const auto it = body.find(key);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

double number(const json& body, const char* key, double lo, double hi, double fallback) {
  const json* v = field(body, key);
  if (!v) return fallback;
  if (!v->is_number()) bad_type(key, "a number", *v);
  const double x = v->get<double>();
  if (!(x >= lo && x <= hi)) bad_value(key, fmt::format("{} is outside the range [{}, {}].", x, lo, hi));
  return x;
}

int64_t integer(const json& body, const char* key, int64_t lo, int64_t hi, int64_t fallback) {
  const json* v = field(body, key);
  if (!v) return fallback;
  if (v->is_number_float()) {  // 5.0 is an integer to a JSON client written in JavaScript
    const double d = v->get<double>();
    if (d != std::floor(d) || !std::isfinite(d)) bad_type(key, "an integer", *v);
  } else if (!v->is_number()) {
    bad_type(key, "an integer", *v);
  }
  if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(hi))
    bad_value(key, fmt::format("{} is more than the maximum of {}.", v->get<uint64_t>(), hi));
  const double d = v->get<double>();
  if (d < double(lo) || d > double(hi)) bad_value(key, fmt::format("{} is outside the range [{}, {}].", v->dump(), lo, hi));
  return v->is_number_float() ? int64_t(d) : v->get<int64_t>();
}

bool boolean(const json& body, const char* key, bool fallback) {
  const json* v = field(body, key);
  if (!v) return fallback;
  if (!v->is_boolean()) bad_type(key, "a boolean", *v);
  return v->get<bool>();
}

// "stop": a string or a list of strings (OpenAI allows up to 4; loom a few more).
std::vector<std::string> stop_strings(const json& body) {
  const json* v = field(body, "stop");
  if (!v) return {};
  std::vector<std::string> out;
  if (v->is_string()) {
    out.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    for (const auto& s : *v) {
      if (!s.is_string()) bad_type("stop", "a string or an array of strings", *v);
      out.push_back(s.get<std::string>());
    }
  } else {
    bad_type("stop", "a string or an array of strings", *v);
  }
  if (out.size() > 16) bad_value("stop", fmt::format("{} stop sequences given; at most 16 are allowed.", out.size()));
  std::erase(out, std::string{});  // an empty stop would end every answer before it starts
  return out;
}

// A message's "content": a string, or an array of text parts (the newer
// OpenAI form), which are joined by newlines.
std::string message_content(const json& m, size_t index) {
  const std::string param = fmt::format("messages.[{}].content", index);
  const json* c = field(m, "content");
  if (!c) return {};
  if (c->is_string()) return c->get<std::string>();
  if (!c->is_array()) bad_type(param, "a string or an array of content parts", *c);
  std::string out;
  for (const auto& part : *c) {
    if (!part.is_object()) bad_type(param, "a string or an array of content parts", *c);
    const json* type = field(part, "type");
    if (!type || !type->is_string() || type->get<std::string>() != "text")
      throw HttpError(400,
                      fmt::format("{}: only text content parts are supported (got type {})", param,
                                  type ? type->dump() : "none"),
                      param, "invalid_value");
    const json* text = field(part, "text");
    if (!text || !text->is_string()) bad_type(param + ".text", "a string", text ? *text : json());
    if (!out.empty()) out += "\n";
    out += text->get<std::string>();
  }
  return out;
}

std::vector<tokenizer::ChatMessage> chat_messages(const json& body) {
  const json* v = field(body, "messages");
  if (!v) throw HttpError(400, "Missing required parameter: 'messages'.", "messages", "missing_required_parameter");
  if (!v->is_array()) bad_type("messages", "an array", *v);
  if (v->empty()) throw HttpError(400, "'messages' must hold at least one message.", "messages", "invalid_value");
  std::vector<tokenizer::ChatMessage> out;
  for (size_t i = 0; i < v->size(); ++i) {
    const json& m = (*v)[i];
    const std::string param = fmt::format("messages.[{}]", i);
    if (!m.is_object()) bad_type(param, "an object", m);
    const json* role = field(m, "role");
    if (!role || !role->is_string()) bad_type(param + ".role", "a string", role ? *role : json());
    std::string r = role->get<std::string>();
    if (r == "developer") r = "system";  // OpenAI's newer name for the system prompt
    if (r != "system" && r != "user" && r != "assistant")
      throw HttpError(400,
                      fmt::format("{}.role: '{}' is not supported; use system, developer, user or assistant (loom has "
                                  "no tool calling yet)",
                                  param, r),
                      param + ".role", "invalid_value");
    if (field(m, "tool_calls") || field(m, "function_call"))
      throw HttpError(400, param + ": tool calls are not supported", param, "invalid_value");
    out.push_back({std::move(r), message_content(m, i)});
  }
  return out;
}

// Rejects parameters loom does not implement instead of silently ignoring
// them, so a client never believes it got something it did not.
void reject_unsupported(const json& body) {
  if (const json* n = field(body, "n"); n && !(n->is_number() && n->get<double>() == 1.0))
    throw HttpError(400,
                    fmt::format("n = {} is not supported: loom generates one choice per request (n must be 1); send "
                                "several requests instead",
                                n->dump()),
                    "n", "invalid_value");
  if (const json* b = field(body, "logit_bias"); b && !(b->is_object() && b->empty()))
    throw HttpError(400, "logit_bias is not supported", "logit_bias", "invalid_value");
  for (const char* key : {"tools", "functions"})
    if (const json* t = field(body, key); t && !(t->is_array() && t->empty()))
      throw HttpError(400, fmt::format("'{}' is not supported: loom has no tool calling yet", key), key,
                      "invalid_value");
}

}  // namespace

ModelInfo model_info(const engine::Engine& engine) {
  return {.tokenizer = &engine.tokenizer(),
          .metadata = &engine.metadata(),
          .model_path = engine.model_path(),
          .ctx_size = engine.ctx_size(),
          .token_table = [&engine] { return engine.token_table(); }};
}

RequestParser::RequestParser(ModelInfo model, ParserOptions options)
    : model_(std::move(model)), options_(std::move(options)) {
  LOOM_CHECK(!options_.model_names.empty(), "[serve] RequestParser needs at least one model name");
  LOOM_CHECK(model_.tokenizer && model_.metadata, "[serve] RequestParser needs a tokenizer and metadata");
  const std::string& path = model_.model_path;
  template_ = tokenizer::for_model(*model_.metadata, std::filesystem::is_directory(path) ? path : "",
                                   options_.chat_template);
  const auto& tok = *model_.tokenizer;
  chat_context_ = tokenizer::chat_context(tok);
  bos_prefix_ = tok.encode("", {.add_bos = tok.default_add_bos()});
}

void RequestParser::check_model(const json& body, Job& job) const {
  const json* m = field(body, "model");
  if (!m) {  // lenient: a server of one model knows which one is meant
    job.model = model_id();
    return;
  }
  if (!m->is_string()) bad_type("model", "a string", *m);
  job.model = m->get<std::string>();
  if (std::find(options_.model_names.begin(), options_.model_names.end(), job.model) == options_.model_names.end())
    throw HttpError(404,
                    fmt::format("The model `{}` does not exist or you do not have access to it. This server serves "
                                "`{}` (GET /v1/models lists it).",
                                job.model, model_id()),
                    "model", "model_not_found");
}

// Sampling, stop strings, streaming and response format: the fields chat and
// completions share.
void RequestParser::parse_common(const json& body, Job& job) const {
  reject_unsupported(body);
  auto& s = job.request.sampling;
  s = options_.defaults;
  s.temperature = float(number(body, "temperature", 0, 2, s.temperature));
  s.top_p = float(number(body, "top_p", 0, 1, s.top_p));
  s.top_k = int32_t(integer(body, "top_k", -1, 1 << 20, s.top_k));  // -1 (vLLM's "off") or 0: off
  s.min_p = float(number(body, "min_p", 0, 1, s.min_p));
  s.presence_penalty = float(number(body, "presence_penalty", -2, 2, s.presence_penalty));
  s.frequency_penalty = float(number(body, "frequency_penalty", -2, 2, s.frequency_penalty));
  s.repeat_penalty = float(number(body, "repetition_penalty", 0.01, 10, s.repeat_penalty));  // vLLM's name
  s.repeat_penalty = float(number(body, "repeat_penalty", 0.01, 10, s.repeat_penalty));      // llama.cpp's
  if (s.presence_penalty != 0 || s.frequency_penalty != 0) s.repeat_last_n = -1;  // OpenAI counts the whole answer
  const int64_t seed = integer(body, "seed", INT64_MIN, INT64_MAX, -1);
  s.seed = field(body, "seed") ? uint64_t(seed) : std::random_device{}() * 0x9E3779B97F4A7C15ull + std::random_device{}();

  job.stream = boolean(body, "stream", false);
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) bad_type("stream_options", "an object", *so);
    if (!job.stream)
      throw HttpError(400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options",
                      "invalid_value");
    job.include_usage = boolean(*so, "include_usage", false);
  }
  job.request.ignore_eos = boolean(body, "ignore_eos", false);
  for (auto& stop : stop_strings(body)) job.request.stop.push_back(std::move(stop));

  if (const json* rf = field(body, "response_format")) job.request.constraint = constraint_for(*rf);
  if (options_.timeout_seconds > 0)
    job.request.deadline = std::chrono::steady_clock::now() +
                           std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                               std::chrono::duration<double>(options_.timeout_seconds));
}

// max_tokens against the context: OpenAI's context_length_exceeded, with the numbers.
void RequestParser::set_limits(const json& body, Job& job, const char* prompt_param) const {
  const int64_t ctx = model_.ctx_size;
  const int64_t n_prompt = int64_t(job.request.prompt.size());
  const char* key = field(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  const int64_t asked = integer(body, key, 1, INT32_MAX, -1);
  const int64_t wanted = asked > 0 ? asked : 1;
  if (n_prompt + wanted > ctx)
    throw HttpError(400,
                    fmt::format("This model's maximum context length is {} tokens. However, you requested {} tokens "
                                "({} in the {}, {} in the completion). Please reduce the length of the {} or "
                                "completion.",
                                ctx, n_prompt + wanted, n_prompt, prompt_param, wanted, prompt_param),
                    prompt_param, "context_length_exceeded");
  job.request.max_tokens = asked > 0 ? asked : ctx - n_prompt;
}

std::shared_ptr<const sample::Constraint> RequestParser::constraint_for(const json& rf) const {
  if (!rf.is_object()) bad_type("response_format", "an object", rf);
  const json* type = field(rf, "type");
  if (!type || !type->is_string()) bad_type("response_format.type", "a string", type ? *type : json());
  const std::string t = type->get<std::string>();
  std::string schema;
  if (t == "text") return nullptr;
  if (t == "json_schema") {
    const json* js = field(rf, "json_schema");
    if (!js || !js->is_object()) bad_type("response_format.json_schema", "an object", js ? *js : json());
    const json* sc = field(*js, "schema");
    if (!sc) {
      schema = "{}";  // OpenAI allows a json_schema without a schema: any JSON
    } else if (sc->is_object() || sc->is_boolean()) {
      schema = sc->dump();
    } else {
      bad_type("response_format.json_schema.schema", "an object", *sc);
    }
  } else if (t != "json_object") {
    throw HttpError(400,
                    fmt::format("response_format.type '{}' is not supported; use text, json_object or json_schema", t),
                    "response_format.type", "invalid_value");
  }
  {
    std::lock_guard lock(constraints_mu_);
    if (auto it = constraints_.find(schema); it != constraints_.end()) return it->second;
  }
  std::shared_ptr<const sample::Constraint> c;
  try {
    LOOM_CHECK(model_.token_table, "[serve] response_format needs the model's token table");
    c = sample::json_constraint(model_.token_table(), schema);
  } catch (const HttpError&) {
    throw;
  } catch (const Error& e) {
    throw HttpError(400, fmt::format("response_format: {}", e.what()), "response_format", "invalid_value");
  }
  std::lock_guard lock(constraints_mu_);
  if (constraints_.size() >= 64) constraints_.clear();  // a crude bound; real clients reuse a handful of schemas
  constraints_.emplace(schema, c);
  return c;
}

Job RequestParser::chat(const json& body) const {
  if (!body.is_object()) throw HttpError(400, "The request body must be a JSON object.", "", "invalid_value");
  Job job;
  job.endpoint = Endpoint::Chat;
  check_model(body, job);
  const auto messages = chat_messages(body);
  parse_common(body, job);
  job.logprobs = boolean(body, "logprobs", false);
  job.top_logprobs = int(integer(body, "top_logprobs", 0, 20, 0));
  if (field(body, "top_logprobs") && !job.logprobs)
    throw HttpError(400, "'top_logprobs' needs 'logprobs' set to true.", "top_logprobs", "invalid_value");

  std::string prompt;
  try {
    prompt = template_.render(messages, /*add_generation_prompt=*/true, chat_context_);
  } catch (const Error& e) {
    throw HttpError(400, fmt::format("messages: the chat template ({}) refused them: {}", template_.name(), e.what()),
                    "messages", "invalid_value");
  }
  const auto& tok = *model_.tokenizer;
  auto& ids = job.request.prompt;
  ids = tok.encode(prompt, {.parse_special = !template_.is_raw()});
  // The template may already write BOS as text; add it only when it did not.
  if (!bos_prefix_.empty() &&
      !(ids.size() >= bos_prefix_.size() && std::equal(bos_prefix_.begin(), bos_prefix_.end(), ids.begin())))
    ids.insert(ids.begin(), bos_prefix_.begin(), bos_prefix_.end());
  if (ids.empty()) throw HttpError(400, "The messages make an empty prompt.", "messages", "invalid_value");
  for (const auto& s : template_.stop_texts()) job.request.stop.push_back(s);
  set_limits(body, job, "messages");
  job.request.logprobs = job.logprobs;
  job.request.top_logprobs = job.top_logprobs;
  return job;
}

Job RequestParser::completion(const json& body) const {
  if (!body.is_object()) throw HttpError(400, "The request body must be a JSON object.", "", "invalid_value");
  Job job;
  job.endpoint = Endpoint::Completion;
  check_model(body, job);
  if (boolean(body, "echo", false)) throw HttpError(400, "echo is not supported", "echo", "invalid_value");
  if (field(body, "suffix")) throw HttpError(400, "suffix is not supported", "suffix", "invalid_value");
  if (integer(body, "best_of", 1, 1, 1) != 1) throw HttpError(400, "best_of must be 1", "best_of", "invalid_value");
  parse_common(body, job);
  if (const json* lp = field(body, "logprobs")) {
    if (lp->is_boolean()) bad_type("logprobs", "an integer", *lp);  // the legacy API's logprobs is a count
    job.logprobs = true;
    job.top_logprobs = int(integer(body, "logprobs", 0, 20, 0));
  }

  const json* p = field(body, "prompt");
  if (!p) throw HttpError(400, "Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter");
  // A list holding one prompt is the same as that prompt; several are a batch.
  if (p->is_array() && p->size() == 1 && ((*p)[0].is_string() || (*p)[0].is_array())) p = &(*p)[0];
  const auto& tok = *model_.tokenizer;
  auto& ids = job.request.prompt;
  if (p->is_string()) {
    // As `loom run -p` does: BOS if the model wants one, special-token text taken literally.
    ids = tok.encode(p->get<std::string>(), {.add_bos = tok.default_add_bos()});
  } else if (p->is_array()) {
    for (const auto& t : *p) {
      if (t.is_string())
        throw HttpError(400, "Several prompts in one request are not supported; send one request per prompt.",
                        "prompt", "invalid_value");
      if (!t.is_number_integer()) bad_type("prompt", "a string or an array of token ids", *p);
      const int64_t id = t.get<int64_t>();
      if (id < 0 || id >= tok.vocab_size())
        bad_value("prompt", fmt::format("token id {} is outside the vocabulary (0..{}).", id, tok.vocab_size() - 1));
      ids.push_back(int32_t(id));
    }
  } else {
    bad_type("prompt", "a string or an array of token ids", *p);
  }
  if (ids.empty())
    throw HttpError(400, "The prompt is empty (and this model's tokenizer adds no BOS token to start from).", "prompt",
                    "invalid_value");
  set_limits(body, job, "prompt");
  job.request.logprobs = job.logprobs;
  job.request.top_logprobs = job.top_logprobs;
  return job;
}

}  // namespace loom::serve
