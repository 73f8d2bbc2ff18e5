// loom chat: a multi-turn conversation with a model in the terminal, in the
// model's chat format. Each turn renders the whole conversation with the
// template, and only the tokens after the prefix already in the KV cache are
// fed, so earlier turns are never recomputed.
//
// Interactive (stdin is a terminal): "> " prompts, answers stream to stdout.
// Ctrl-C stops the answer being written; Ctrl-C twice at the prompt, Ctrl-D
// or /exit quits; /reset starts a new conversation (the system prompt stays).
//
// Piped stdin: every non-empty line is one user turn ("/reset" and "/exit"
// work as above). stdout gets only the answers, each followed by one "\n".
// stderr gets one line per turn,
//   chat: turn N: prompt P tokens (R reused, F fed), answer G tokens (B bytes), position K
// where B is the answer's length on stdout without its "\n" and K the
// sequence length in the KV cache afterwards, and after /reset
//   chat: reset: position 0
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

#include "commands.h"
#include "sampling_flags.h"
#include "loom/core/error.h"
#include "loom/engine/session.h"
#include "loom/tokenizer/chat_stop.h"
#include "loom/tokenizer/chat_template.h"
#include "loom/tokenizer/jinja/text.h"

namespace loom::cli {

namespace {

// Ctrl-C presses not yet handled. A signal handler can only reach global
// state; this counter is the whole of it.
std::atomic<int> g_interrupts{0};
extern "C" void on_sigint(int) { g_interrupts.fetch_add(1); }

// Installs the Ctrl-C handler for the chat and restores the previous one.
// SA_RESTART keeps writes to stdout from failing; the prompt waits in poll(),
// which a signal always interrupts.
class SigintHandler {
 public:
  SigintHandler() {
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, &old_);
  }
  ~SigintHandler() { sigaction(SIGINT, &old_, nullptr); }
  SigintHandler(const SigintHandler&) = delete;
  SigintHandler& operator=(const SigintHandler&) = delete;

 private:
  struct sigaction old_ {};
};

// Lines from stdin; reports a Ctrl-C that arrives while waiting for one.
class LineReader {
 public:
  enum class Status { Line, Eof, Interrupted };
  Status read(std::string& line) {
    for (;;) {
      if (const size_t nl = buf_.find('\n'); nl != std::string::npos) {
        line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        return Status::Line;
      }
      if (eof_) {
        if (buf_.empty()) return Status::Eof;
        line = std::move(buf_);
        buf_.clear();
        return Status::Line;
      }
      pollfd p{0, POLLIN, 0};
      if (poll(&p, 1, -1) < 0) {
        if (errno != EINTR) fail("[cli] waiting for input on stdin: {}", std::strerror(errno));
        if (g_interrupts.exchange(0) > 0) return Status::Interrupted;
        continue;
      }
      char chunk[4096];
      const ssize_t n = ::read(0, chunk, sizeof chunk);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail("[cli] reading stdin: {}", std::strerror(errno));
      }
      if (n == 0) eof_ = true;
      buf_.append(chunk, size_t(n));
    }
  }

 private:
  std::string buf_;
  bool eof_ = false;
};

struct ChatArgs {
  std::string model, tokenizer, system, chat_template, backend = "cpu";
  int64_t n_predict = -1, ctx_size = 0;
  int threads = 0;
  SamplingFlags sampling;
  std::vector<std::string> lora;
};

void write_out(std::string_view s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);
}

class Chat {
 public:
  explicit Chat(const ChatArgs& a) : args_(a), session_(options(a)), tok_(session_.tokenizer()), tty_(isatty(0) != 0) {
    const std::string& path = session_.source().path();
    tmpl_ = tokenizer::for_model(session_.source().metadata(), std::filesystem::is_directory(path) ? path : "",
                                 a.chat_template);
    ctx_ = tokenizer::chat_context(tok_);
    // What EncodeOptions::add_bos puts in front (BOS, or GLM's [gMASK] sop),
    // added to a rendered prompt unless the template already wrote it.
    prefix_ = tok_.encode("", {.add_bos = tok_.default_add_bos()});
    go_.sampling = a.sampling.params();
    if (tmpl_.is_raw()) {
      std::string known;
      for (const auto& n : tokenizer::ChatTemplate::builtin_names()) known += (known.empty() ? "" : ", ") + n;
      std::fprintf(stderr,
                   "chat: %s has no chat template, so the raw format is used: your text goes to the model as it is "
                   "and it continues it. Pick a chat format with --chat-template NAME (%s).\n",
                   path.c_str(), known.c_str());
    } else {
      std::fprintf(stderr, "chat: template: %s\n", tmpl_.origin().c_str());
    }
    if (tty_) std::fprintf(stderr, "Type a message. /reset starts over, /exit quits, Ctrl-C stops an answer.\n");
    reset_messages();
  }

  void run() {
    SigintHandler handler;
    LineReader in;
    int prompt_interrupts = 0;
    for (;;) {
      if (tty_) write_out("> ");
      std::string line;
      const auto status = in.read(line);
      if (status == LineReader::Status::Eof) {
        if (tty_) write_out("\n");
        return;
      }
      if (status == LineReader::Status::Interrupted) {
        if (++prompt_interrupts >= 2) {
          write_out("\n");
          return;
        }
        std::fprintf(stderr, "\n(Ctrl-C again or /exit to quit)\n");
        continue;
      }
      prompt_interrupts = 0;
      const std::string text = tokenizer::jinja::text::strip(line);
      if (text.empty()) continue;
      if (text == "/exit") return;
      if (text == "/reset") {
        reset_messages();
        session_.reset();
        std::fprintf(stderr, tty_ ? "(new conversation)\n" : "chat: reset: position %lld\n",
                     static_cast<long long>(session_.position()));
        continue;
      }
      messages_.push_back({"user", line});
      try {
        turn();
      } catch (const Error& e) {
        messages_.pop_back();
        if (!tty_) throw;  // a script should see the failure in the exit status
        std::fprintf(stderr, "error: %s\n", e.what());
      }
    }
  }

 private:
  static engine::SessionOptions options(const ChatArgs& a) {
    engine::SessionOptions so;
    so.model_path = a.model.empty() ? default_model_path() : a.model;
    so.tokenizer_path = a.tokenizer;
    so.backend = a.backend;
    so.threads = a.threads;
    so.ctx_size = a.ctx_size;
    so.lora = a.lora;
    return so;
  }

  void reset_messages() {
    messages_.clear();
    if (!args_.system.empty()) messages_.push_back({"system", args_.system});
  }

  // The prompt tokens of the conversation so far; when it no longer fits the
  // context, the oldest turns are dropped (the system prompt stays).
  std::vector<int32_t> prompt_tokens() {
    for (;;) {
      const std::string prompt = tmpl_.render(messages_, /*add_generation_prompt=*/true, ctx_);
      std::vector<int32_t> ids = tok_.encode(prompt, {.parse_special = !tmpl_.is_raw()});
      if (!prefix_.empty() && !(ids.size() >= prefix_.size() && std::equal(prefix_.begin(), prefix_.end(), ids.begin())))
        ids.insert(ids.begin(), prefix_.begin(), prefix_.end());
      if (int64_t(ids.size()) < session_.capacity()) return ids;
      const size_t first = !messages_.empty() && messages_[0].role == "system" ? 1 : 0;
      LOOM_CHECK(messages_.size() > first + 1,
                 "[cli] this message alone is {} tokens, more than the context ({}); use a larger -c or a shorter "
                 "message",
                 ids.size(), session_.capacity());
      messages_.erase(messages_.begin() + long(first));
      std::fprintf(stderr, "chat: the conversation no longer fits the context; dropped its oldest message\n");
    }
  }

  void turn() {
    const std::vector<int32_t> ids = prompt_tokens();
    // Reuse the longest prefix already in the cache; at least one token is
    // fed, since its logits start the answer.
    const auto cached = session_.tokens();
    size_t keep = 0;
    while (keep < cached.size() && keep < ids.size() && cached[keep] == ids[keep]) ++keep;
    keep = std::min(keep, ids.size() - 1);
    session_.rewind(int64_t(keep));

    engine::GenerateOptions go = go_;
    const int64_t room = session_.capacity() - int64_t(ids.size());
    go.n_predict = args_.n_predict < 0 ? room : std::min(args_.n_predict, room);

    tokenizer::StreamDecoder decoder(tok_);
    tokenizer::ChatStop stop(tmpl_.stop_texts());
    std::string shown, raw_answer;
    bool interrupted = false;
    // Leading whitespace of an answer (GLM's newline after <|assistant|>,
    // the space after Llama 2's [/INST]) is not part of what it says.
    auto show = [&](std::string s) {
      if (shown.empty() && !tmpl_.is_raw()) {
        const size_t start = s.find_first_not_of(" \t\r\n");
        if (start == std::string::npos) return;
        s.erase(0, start);
      }
      shown += s;
      write_out(s);
    };
    g_interrupts.store(0);
    const std::span<const int32_t> suffix(ids.data() + keep, ids.size() - keep);
    const engine::GenerateStats st = session_.generate(suffix, go, [&](int32_t id) {
      if (g_interrupts.load() > 0) {
        interrupted = true;
        return false;
      }
      if (id >= tok_.vocab_size()) return true;  // padding rows of the output layer have no text
      if (tok_.type(id) == tokenizer::TokenType::Control && stop.is_stop(tok_.token_bytes(id, true))) return false;
      raw_answer += tok_.token_bytes(id);
      show(stop.push(decoder.push(id)));
      return !stop.stopped();
    });
    if (!stop.stopped()) {
      show(stop.push(decoder.flush()));
      show(stop.finish());
    }
    write_out("\n");
    g_interrupts.store(0);
    if (interrupted) std::fprintf(stderr, "(stopped)\n");
    // The raw format continues the text as it is, spaces included; a chat
    // answer is kept as shown, without trailing whitespace.
    messages_.push_back({"assistant", tmpl_.is_raw() ? raw_answer : tokenizer::jinja::text::strip(shown)});
    ++turns_;
    if (!tty_)
      std::fprintf(stderr, "chat: turn %d: prompt %zu tokens (%zu reused, %zu fed), answer %lld tokens (%zu bytes), "
                   "position %lld\n",
                   turns_, ids.size(), keep, ids.size() - keep, static_cast<long long>(st.generated_tokens),
                   shown.size(), static_cast<long long>(session_.position()));
  }

  ChatArgs args_;
  engine::Session session_;
  const tokenizer::Tokenizer& tok_;
  bool tty_;
  tokenizer::ChatTemplate tmpl_;
  tokenizer::ChatContext ctx_;
  std::vector<int32_t> prefix_;
  engine::GenerateOptions go_;
  std::vector<tokenizer::ChatMessage> messages_;
  int turns_ = 0;
};

}  // namespace

void add_chat(CLI::App& app) {
  auto a = std::make_shared<ChatArgs>();
  CLI::App* c = app.add_subcommand(
      "chat",
      "Chat with a model in its chat format. In a terminal: type messages, /reset starts over, /exit (or Ctrl-D, or "
      "Ctrl-C twice) quits, Ctrl-C stops an answer. With piped stdin every line is a turn; stdout gets each answer "
      "followed by a newline, stderr one line per turn: \"chat: turn N: prompt P tokens (R reused, F fed), answer G "
      "tokens (B bytes), position K\"");
  c->add_option("-m,--model", a->model,
                "Model: GGUF file, llama2.c .bin, or Hugging Face folder (default: the built-in model)");
  c->add_option("--tokenizer", a->tokenizer, "Tokenizer file for llama2.c models (default: found beside the model)");
  c->add_option("--system", a->system, "System prompt");
  c->add_option("--chat-template", a->chat_template,
                "Use this template instead of the model's: a built-in name (llama2, llama3, chatml, qwen2, glm4, "
                "chatglm3, telechat2, mistral, raw), a Jinja file, or a tokenizer_config.json");
  c->add_option("-n,--n-predict", a->n_predict, "Most tokens per answer (-1: until the end of the turn or the context)")
      ->capture_default_str();
  a->sampling.add_to(c);
  c->add_option("-t,--threads", a->threads, "Threads (default: all)")->check(CLI::Range(0, 1024));
  c->add_option("-c,--ctx-size", a->ctx_size, "Context size in tokens (default: the model's)")->check(CLI::NonNegativeNumber);
  c->add_option("--backend", a->backend, "Backend: cpu or reference")->capture_default_str();
  c->add_option("--lora", a->lora, "PEFT LoRA adapter folder merged into the weights at load time (repeatable)");
  c->callback([a] {
    Chat chat(*a);
    chat.run();
  });
}

}  // namespace loom::cli
