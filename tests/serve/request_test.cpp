// OpenAI request bodies -> engine requests: what each field becomes, and the
// 4xx error (status, param, code) every malformed field gets. The model is
// the stories tokenizer (tok512) with a context of 64 tokens; expected token
// ids come from encoding hand-written prompt text.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "loom/format/metadata.h"
#include "loom/serve/http_error.h"
#include "loom/serve/openai_request.h"
#include "loom/tokenizer/tokenizer.h"
#include "support/test_data.h"

namespace loom::serve {
namespace {

using nlohmann::json;

class RequestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LOOM_DATA(path, "models/tok512.bin");
    tok_ = tokenizer::load(path);
    table_ = std::make_shared<sample::TokenTable>();
    for (int32_t i = 0; i < tok_->vocab_size(); ++i) table_->bytes.push_back(tok_->token_bytes(i));
    table_->end_of_generation = {tok_->eos()};
  }

  RequestParser parser(std::string chat_template = "", double timeout = 0, int64_t ctx = 64) const {
    ModelInfo m{.tokenizer = tok_.get(),
                .metadata = &metadata_,
                .model_path = "stories.gguf",
                .ctx_size = ctx,
                .token_table = [t = table_] { return t; }};
    return RequestParser(m, {.model_names = {"stories", "default"},
                             .chat_template = std::move(chat_template),
                             .timeout_seconds = timeout});
  }

  std::vector<int32_t> bos_and(const std::string& text, bool special = false) const {
    auto ids = tok_->encode(text, {.parse_special = special});
    ids.insert(ids.begin(), tok_->bos());
    return ids;
  }

  std::unique_ptr<tokenizer::Tokenizer> tok_;
  std::shared_ptr<sample::TokenTable> table_;
  format::Metadata metadata_;
};

// The HttpError a body gets, as {status, param, code}.
struct Refusal {
  int status = 0;
  std::string param, code;
};

template <typename F>
Refusal refusal(F&& f) {
  try {
    f();
  } catch (const HttpError& e) {
    return {e.status(), e.param(), e.code()};
  }
  return {};
}

#define EXPECT_REFUSED(call, status_, param_, code_) \
  do {                                               \
    const Refusal r = refusal([&] { (void)(call); });  \
    EXPECT_EQ(r.status, status_) << #call;           \
    EXPECT_EQ(r.param, param_) << #call;             \
    EXPECT_EQ(r.code, code_) << #call;               \
  } while (0)

TEST_F(RequestTest, CompletionPromptIsEncodedAsLoomRunDoes) {
  ASSERT_TRUE(tok_->default_add_bos());
  const Job job = parser().completion(json::parse(R"({"model": "stories", "prompt": "Once upon a time"})"));
  EXPECT_EQ(job.endpoint, Endpoint::Completion);
  EXPECT_EQ(job.model, "stories");
  EXPECT_EQ(job.request.prompt, bos_and("Once upon a time"));
  EXPECT_FALSE(job.stream);
  EXPECT_TRUE(job.request.stop.empty());
  EXPECT_FALSE(job.request.constraint);
  EXPECT_FALSE(job.request.deadline);
  // No max_tokens: up to the end of the context.
  EXPECT_EQ(job.request.max_tokens, 64 - int64_t(job.request.prompt.size()));
}

TEST_F(RequestTest, SamplingFieldsMapToSamplerParams) {
  const Job job = parser().completion(json::parse(R"({
    "prompt": "Hi", "max_tokens": 7, "temperature": 0, "top_p": 0.5, "top_k": 3, "min_p": 0.1,
    "presence_penalty": 0.5, "frequency_penalty": -1, "seed": 42, "stop": ["\n", "end"],
    "stream": true, "stream_options": {"include_usage": true}, "logprobs": 2})"));
  EXPECT_EQ(job.model, "stories");  // no "model": the served one
  EXPECT_EQ(job.request.max_tokens, 7);
  const auto& s = job.request.sampling;
  EXPECT_EQ(s.temperature, 0.0f);
  EXPECT_EQ(s.top_p, 0.5f);
  EXPECT_EQ(s.top_k, 3);
  EXPECT_FLOAT_EQ(s.min_p, 0.1f);
  EXPECT_EQ(s.presence_penalty, 0.5f);
  EXPECT_EQ(s.frequency_penalty, -1.0f);
  EXPECT_EQ(s.repeat_last_n, -1);  // OpenAI's penalties count the whole text
  EXPECT_EQ(s.seed, 42u);
  EXPECT_EQ(job.request.stop, (std::vector<std::string>{"\n", "end"}));
  EXPECT_TRUE(job.stream);
  EXPECT_TRUE(job.include_usage);
  EXPECT_TRUE(job.logprobs && job.request.logprobs);
  EXPECT_EQ(job.top_logprobs, 2);
  EXPECT_EQ(job.request.top_logprobs, 2);
}

TEST_F(RequestTest, OpenAIDefaultsWhenFieldsAreMissingOrNull) {
  const Job job = parser().completion(json::parse(R"({"prompt": "Hi", "temperature": null, "stop": "x"})"));
  EXPECT_EQ(job.request.sampling.temperature, 1.0f);
  EXPECT_EQ(job.request.sampling.top_p, 1.0f);
  EXPECT_EQ(job.request.sampling.top_k, 0);
  EXPECT_EQ(job.request.sampling.min_p, 0.0f);
  EXPECT_EQ(job.request.stop, std::vector<std::string>{"x"});
}

TEST_F(RequestTest, MaxCompletionTokensIsMaxTokensNewName) {
  const Job job = parser().chat(json::parse(R"({"messages": [{"role": "user", "content": "Hi"}], "max_completion_tokens": 5})"));
  EXPECT_EQ(job.request.max_tokens, 5);
}

TEST_F(RequestTest, PromptAsTokenIds) {
  const Job job = parser().completion(json::parse(R"({"prompt": [1, 300, 301]})"));
  EXPECT_EQ(job.request.prompt, (std::vector<int32_t>{1, 300, 301}));
  const Job one = parser().completion(json::parse(R"({"prompt": ["Hi"]})"));
  EXPECT_EQ(one.request.prompt, bos_and("Hi"));
}

TEST_F(RequestTest, ChatMessagesGoThroughTheChatTemplate) {
  const Job job = parser("chatml", 0, 512).chat(json::parse(R"({"model": "default", "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": "Hi"},
      {"role": "assistant", "content": "Hello."},
      {"role": "user", "content": [{"type": "text", "text": "Tell"}, {"type": "text", "text": "a story"}]}]})"));
  EXPECT_EQ(job.endpoint, Endpoint::Chat);
  EXPECT_EQ(job.model, "default");
  EXPECT_EQ(job.request.prompt, bos_and("<|im_start|>system\nBe brief.<|im_end|>\n"
                                        "<|im_start|>user\nHi<|im_end|>\n"
                                        "<|im_start|>assistant\nHello.<|im_end|>\n"
                                        "<|im_start|>user\nTell\na story<|im_end|>\n"
                                        "<|im_start|>assistant\n",
                                        true));
  EXPECT_EQ(job.request.stop, std::vector<std::string>{"<|im_end|>"});
}

TEST_F(RequestTest, ChatOnTheRawTemplateIsTheTextItself) {
  const Job job = parser().chat(json::parse(R"({"messages": [{"role": "user", "content": "Once upon a time"}]})"));
  EXPECT_EQ(job.request.prompt, bos_and("Once upon a time"));
}

TEST_F(RequestTest, ChatLogprobs) {
  const Job job = parser().chat(
      json::parse(R"({"messages": [{"role": "user", "content": "Hi"}], "logprobs": true, "top_logprobs": 3})"));
  EXPECT_TRUE(job.request.logprobs);
  EXPECT_EQ(job.request.top_logprobs, 3);
}

TEST_F(RequestTest, ResponseFormatBecomesAJsonConstraint) {
  const auto p = parser();
  EXPECT_TRUE(p.chat(json::parse(R"({"messages": [{"role": "user", "content": "Hi"}],
                                     "response_format": {"type": "json_object"}})")).request.constraint);
  EXPECT_TRUE(p.chat(json::parse(R"({"messages": [{"role": "user", "content": "Hi"}],
      "response_format": {"type": "json_schema", "json_schema": {"name": "x", "strict": true, "schema":
        {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"],
         "additionalProperties": false}}}})")).request.constraint);
  EXPECT_FALSE(p.chat(json::parse(R"({"messages": [{"role": "user", "content": "Hi"}],
                                      "response_format": {"type": "text"}})")).request.constraint);
}

TEST_F(RequestTest, TimeoutSetsADeadline) {
  const Job job = parser("", 5).completion(json::parse(R"({"prompt": "Hi"})"));
  ASSERT_TRUE(job.request.deadline);
  const double left = std::chrono::duration<double>(*job.request.deadline - std::chrono::steady_clock::now()).count();
  EXPECT_GT(left, 4.0);
  EXPECT_LE(left, 5.0);
}

TEST_F(RequestTest, WrongTypesAre400NamingTheField) {
  const auto p = parser();
  EXPECT_REFUSED(p.completion(json::parse(R"({"prompt": "Hi", "temperature": "hot"})")), 400, "temperature", "invalid_type");
  EXPECT_REFUSED(p.completion(json::parse(R"({"prompt": "Hi", "max_tokens": 1.5})")), 400, "max_tokens", "invalid_type");
  EXPECT_REFUSED(p.completion(json::parse(R"({"prompt": "Hi", "stream": "yes"})")), 400, "stream", "invalid_type");
  EXPECT_REFUSED(p.completion(json::parse(R"({"prompt": "Hi", "stop": 3})")), 400, "stop", "invalid_type");
  EXPECT_REFUSED(p.completion(json::parse(R"({"prompt": 3})")), 400, "prompt", "invalid_type");
  EXPECT_REFUSED(p.completion(json::parse(R"({"prompt": "Hi", "model": 7})")), 400, "model", "invalid_type");
  EXPECT_REFUSED(p.completion(json::parse(R"({"prompt": "Hi", "logprobs": true})")), 400, "logprobs", "invalid_type");
  EXPECT_REFUSED(p.chat(json::parse(R"({"messages": "Hi"})")), 400, "messages", "invalid_type");
  EXPECT_REFUSED(p.chat(json::parse(R"({"messages": [{"role": "user", "content": 5}]})")), 400, "messages.[0].content",
                 "invalid_type");
  EXPECT_REFUSED(p.chat(json::parse(R"({"messages": [{"content": "Hi"}]})")), 400, "messages.[0].role", "invalid_type");
  EXPECT_REFUSED(p.chat(json::parse(R"({"messages": [{"role": "user", "content": "Hi"}], "response_format": "json"})")),
                 400, "response_format", "invalid_type");
  EXPECT_REFUSED(p.chat(json::parse(R"([1, 2])")), 400, "", "invalid_value");
}

TEST_F(RequestTest, BadValuesAre400NamingTheField) {
  const auto p = parser();
  EXPECT_REFUSED(p.completion(json::parse(R"({"prompt": "Hi", "temperature": 3})")), 400, "temperature", "invalid_value");
  EXPECT_REFUSED(p.completion(json::parse(R"({"prompt": "Hi", "top_p": -0.1})")), 400, "top_p", "invalid_value");
  EXPECT_REFUSED(p.completion(json::parse(R"({"prompt": "Hi", "max_tokens": 0})")), 400, "max_tokens", "invalid_value");
  EXPECT_REFUSED(p.completion(json::parse(R"({"prompt": "Hi", "n": 2})")), 400, "n", "invalid_value");
  EXPECT_REFUSED(p.completion(json::parse(R"({"prompt": [1, 100000]})")), 400, "prompt", "invalid_value");
  EXPECT_REFUSED(p.completion(json::parse(R"({"prompt": "Hi", "stream_options": {"include_usage": true}})")), 400,
                 "stream_options", "invalid_value");
  EXPECT_REFUSED(p.chat(json::parse(R"({"messages": []})")), 400, "messages", "invalid_value");
  EXPECT_REFUSED(p.chat(json::parse(R"({"messages": [{"role": "tool", "content": "x"}]})")), 400, "messages.[0].role",
                 "invalid_value");
  EXPECT_REFUSED(p.chat(json::parse(R"({"messages": [{"role": "user", "content": "Hi"}], "top_logprobs": 2})")), 400,
                 "top_logprobs", "invalid_value");
  EXPECT_REFUSED(p.chat(json::parse(R"({"messages": [{"role": "user", "content": "Hi"}], "top_logprobs": 21, "logprobs": true})")),
                 400, "top_logprobs", "invalid_value");
  EXPECT_REFUSED(p.chat(json::parse(R"({"messages": [{"role": "user", "content": "Hi"}],
                                       "response_format": {"type": "xml"}})")),
                 400, "response_format.type", "invalid_value");
}

TEST_F(RequestTest, MissingRequiredFields) {
  const auto p = parser();
  EXPECT_REFUSED(p.completion(json::parse(R"({})")), 400, "prompt", "missing_required_parameter");
  EXPECT_REFUSED(p.chat(json::parse(R"({"model": "stories"})")), 400, "messages", "missing_required_parameter");
}

TEST_F(RequestTest, UnknownModelIs404) {
  EXPECT_REFUSED(parser().completion(json::parse(R"({"model": "gpt-4o", "prompt": "Hi"})")), 404, "model",
                 "model_not_found");
}

TEST_F(RequestTest, PromptLongerThanTheContextIs400) {
  std::string long_text;
  for (int i = 0; i < 80; ++i) long_text += " story";
  EXPECT_REFUSED(parser().completion(json{{"prompt", long_text}}), 400, "prompt", "context_length_exceeded");
  // A prompt that fits, but not with the answer asked for.
  EXPECT_REFUSED(parser().completion(json{{"prompt", "Hi"}, {"max_tokens", 64}}), 400, "prompt",
                 "context_length_exceeded");
  EXPECT_REFUSED(parser().chat(json{{"messages", {{{"role", "user"}, {"content", long_text}}}}}), 400, "messages",
                 "context_length_exceeded");
}

TEST(HttpErrorJson, IsOpenAIShaped) {
  const json j = error_json(HttpError(404, "no such model", "model", "model_not_found"));
  EXPECT_EQ(j, json::parse(R"({"error": {"message": "no such model", "type": "invalid_request_error",
                                         "param": "model", "code": "model_not_found"}})"));
  const json s = error_json(HttpError(500, "boom"));
  EXPECT_EQ(s, json::parse(R"({"error": {"message": "boom", "type": "server_error", "param": null, "code": null}})"));
}

}  // namespace
}  // namespace loom::serve
