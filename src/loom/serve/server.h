// Server: loom's OpenAI-compatible HTTP server (cpp-httplib): chat and text
// completions (streamed as server-sent events or whole), models, health,
// Prometheus metrics, tokenize/detokenize, and the chat page at `/`.
//
// Threading: httplib's worker threads run the handlers; they only parse,
// check, tokenize (chat template included), format and stream. The Engine's
// own thread owns the model. A completion request waits on its RequestStream,
// which the engine callback feeds; a client that goes away is noticed within
// about 100 ms and its request cancelled, which frees its KV blocks.
//
//   engine::Engine engine({.model_path = "model.gguf", .max_sequences = 8});
//   serve::Server server(engine, {.port = 0});   // the engine must outlive the server
//   int port = server.bind();   // 0 picks a free port
//   server.listen();            // returns after stop() (from any thread)
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "loom/engine/engine.h"
#include "loom/serve/openai_request.h"

namespace loom::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                    // 0: any free port (see bind())
  std::vector<std::string> api_keys;  // empty: no authentication
  std::string model_id;               // the name clients use ("": the model file's name without extension)
  std::string chat_template;          // overrides the model's (a built-in name or a file)
  int http_threads = 64;              // connections served at once (a streaming answer holds one)
  std::string web_dir;                // serve the chat page from this folder ("": the copy built into loom)
  size_t body_limit = 8u << 20;       // bytes; larger request bodies get 413
  double timeout_seconds = 600;       // per completion request (0: none)
  bool log_requests = true;           // one line per completion on stderr
  // Sampling for fields a request leaves out (OpenAI's defaults unless set).
  sample::SamplerParams defaults = ParserOptions{}.defaults;
};

class Server {
 public:
  Server(engine::Engine& engine, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the listening socket; returns the port. Throws loom::Error if the
  // address cannot be used.
  int bind();
  // Serves until stop(). Binds first if bind() was not called.
  void listen();
  // Thread-safe; in-flight streams end and their requests are cancelled.
  void stop();

  int port() const;
  const std::string& model_id() const;
  const RequestParser& parser() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace loom::serve
