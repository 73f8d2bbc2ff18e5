#include "loom/serve/server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>

#include "loom/serve/client_connection.h"
#include "loom/serve/http_error.h"
#include "loom/serve/metrics.h"
#include "loom/serve/openai_response.h"
#include "loom/serve/request_stream.h"
#include "loom/serve/web_assets.h"
#include "loom/tokenizer/tokenizer.h"

namespace loom::serve {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using HandlerResponse = httplib::Server::HandlerResponse;

constexpr auto kPoll = std::chrono::milliseconds(100);      // how often a waiting handler looks at the client
constexpr auto kHeartbeat = std::chrono::milliseconds(1000);  // SSE comment while no token comes (prefill, queue)

const char* const kRoutes[] = {"/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics",
                               "/tokenize", "/detokenize"};

// Metric label for a path: a known route, the page, or "other" (so unknown
// paths cannot each make a new time series).
std::string route_label(const std::string& path) {
  for (const char* r : kRoutes)
    if (path == r) return r;
  if (path.rfind("/v1/models/", 0) == 0) return "/v1/models/{model}";
  for (const auto& a : web_assets())
    if (path == a.path || path == "/") return "/ (web)";
  return "other";
}

void send(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(dump(body), "application/json");
}

// Errors close the connection: each connection holds an HTTP thread while it
// idles in keep-alive, and a refused or mistaken client (429, 4xx) should not
// hold one while it backs off.
void send_error(httplib::Response& res, const HttpError& e) {
  res.status = e.status();
  res.set_header("Connection", "close");
  res.set_content(error_body(e), "application/json");
}

json parse_body(const httplib::Request& req) {
  if (req.body.empty()) throw HttpError(400, "The request body is empty; send a JSON object.", "", "invalid_json");
  try {
    return json::parse(req.body);
  } catch (const json::parse_error& e) {
    throw HttpError(400,
                    fmt::format("We could not parse the JSON body of your request ({}). The OpenAI API expects a "
                                "JSON payload.",
                                e.what()),
                    "", "invalid_json");
  }
}

// Keys compared in constant time, so response timing does not reveal a prefix.
bool same_key(std::string_view a, std::string_view b) {
  unsigned diff = a.size() != b.size();
  for (size_t i = 0; i < a.size(); ++i) diff |= unsigned(uint8_t(a[i]) ^ uint8_t(b[i % std::max<size_t>(b.size(), 1)]));
  return diff == 0;
}

std::string stem_of(const std::string& path) {
  std::filesystem::path p(path);
  while (!p.empty() && !p.has_filename()) p = p.parent_path();  // "dir/" -> "dir"
  return p.stem().string().empty() ? "model" : p.stem().string();
}

std::string request_id(const char* prefix, uint64_t n) {
  return fmt::format("{}{:08x}{:08x}", prefix, uint32_t(std::time(nullptr)), uint32_t(n));
}

}  // namespace

struct Server::Impl {
  engine::Engine& engine;
  ServerOptions opt;
  std::string model_id;
  RequestParser parser;
  ServerMetrics metrics;
  httplib::Server http;
  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> next_id{1};
  int port = -1;
  int listen_fd = -1;
  int64_t created = std::time(nullptr);

  Impl(engine::Engine& e, ServerOptions o)
      : engine(e),
        opt(std::move(o)),
        model_id(opt.model_id.empty() ? stem_of(e.model_path()) : opt.model_id),
        parser(model_info(e), ParserOptions{.model_names = model_names(),
                                            .chat_template = opt.chat_template,
                                            .timeout_seconds = opt.timeout_seconds,
                                            .defaults = opt.defaults}) {
    routes();
  }

  // What "model" may say: the id, the file's own name, "default".
  std::vector<std::string> model_names() const {
    std::vector<std::string> names = {model_id};
    for (std::string n : {stem_of(engine.model_path()), std::filesystem::path(engine.model_path()).filename().string(),
                          std::string("default")})
      if (!n.empty() && std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
    return names;
  }

  // Runs a handler, turning every failure into an OpenAI error response.
  template <typename F>
  void guarded(httplib::Response& res, F&& f) {
    try {
      f();
    } catch (const HttpError& e) {
      send_error(res, e);
    } catch (const engine::QueueFull& e) {
      // Retry when the requests ahead have had time to finish (a guess from recent requests).
      const double mean = metrics.mean_request_seconds();
      const int after = int(std::clamp(std::ceil(mean > 0 ? mean : 1.0), 1.0, 60.0));
      res.set_header("Retry-After", std::to_string(after));
      send_error(res, HttpError(429,
                                fmt::format("The server is busy: {} requests are running or waiting. Retry after {} s.",
                                            engine.stats().running + engine.stats().waiting, after),
                                "", "rate_limit_exceeded", "rate_limit_error"));
    } catch (const json::exception& e) {
      send_error(res, HttpError(400, fmt::format("Invalid request: {}", e.what()), "", "invalid_value"));
    } catch (const Error& e) {
      // The engine refuses a request that can never run (prompt longer than
      // the context, bad token ids): the client's mistake.
      send_error(res, HttpError(400, e.what(), "", "invalid_request"));
    } catch (const std::exception& e) {
      send_error(res, HttpError(500, fmt::format("[serve] internal error: {}", e.what()), "", "internal_error"));
    }
  }

  void routes() {
    http.new_task_queue = [n = opt.http_threads] { return new httplib::ThreadPool(size_t(std::max(n, 2))); };
    http.set_payload_max_length(opt.body_limit);
    // Debian's httplib is compiled with a listen backlog of 5: a burst of
    // clients beyond that waits a second for a SYN retransmission. The socket
    // is remembered here (this replaces httplib's default options, of which
    // SO_REUSEADDR is the one that matters) and bind() widens the backlog.
    http.set_socket_options([this](socket_t sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
      listen_fd = sock;
    });
    http.set_keep_alive_max_count(100);
    http.set_keep_alive_timeout(3);
    http.set_read_timeout(30);
    http.set_write_timeout(10);

    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      res.set_header("Access-Control-Allow-Origin", "*");
      if (req.method == "OPTIONS") {  // CORS preflight: browsers ask before a cross-origin POST
        res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
        res.status = 204;
        return HandlerResponse::Handled;
      }
      if (!authorized(req)) {
        res.set_header("WWW-Authenticate", "Bearer");
        send_error(res, HttpError(401,
                                  req.has_header("Authorization")
                                      ? "Incorrect API key provided. Pass one of the server's --api-key values as "
                                        "'Authorization: Bearer KEY'."
                                      : "You didn't provide an API key. Pass one of the server's --api-key values as "
                                        "'Authorization: Bearer KEY'.",
                                  "", "invalid_api_key"));
        return HandlerResponse::Handled;
      }
      return HandlerResponse::Unhandled;
    });

    // Statuses httplib sets itself (404 no route, 413 body too large, 400
    // unparsable request line) get OpenAI-shaped bodies too.
    http.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req,
                                                                   httplib::Response& res) {
      if (!res.body.empty() || res.is_chunked_content_provider_) return HandlerResponse::Unhandled;
      std::string message, code;
      switch (res.status) {
        case 404: message = fmt::format("Unknown request URL: {} {}.", req.method, req.path), code = "unknown_url"; break;
        case 413: message = "The request body is larger than the server accepts (see loom serve --body-limit).", code = "request_too_large"; break;
        case 414: message = "The request URL is too long.", code = "uri_too_long"; break;
        default: message = fmt::format("HTTP {}.", res.status); break;
      }
      send_error(res, HttpError(res.status, message, "", code));
      return HandlerResponse::Handled;
    }));

    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "unknown exception";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      send_error(res, HttpError(500, "[serve] internal error: " + what, "", "internal_error"));
    });

    http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      metrics.count_request(route_label(req.path), res.status);
    });

    http.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] { complete(req, res, Endpoint::Chat); });
    });
    http.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] { complete(req, res, Endpoint::Completion); });
    });
    http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      send(res, 200, {{"object", "list"}, {"data", json::array({model_json()})}});
    });
    http.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
      const std::string name = req.matches[1];
      const auto names = model_names();
      if (std::find(names.begin(), names.end(), name) == names.end())
        return send_error(res, HttpError(404, fmt::format("The model `{}` does not exist.", name), "model",
                                         "model_not_found"));
      send(res, 200, model_json());
    });
    http.Get("/health", [](const httplib::Request&, httplib::Response& res) { send(res, 200, {{"status", "ok"}}); });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics.prometheus(engine.stats()), "text/plain; version=0.0.4; charset=utf-8");
    });
    http.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] { tokenize(req, res); });
    });
    http.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] { detokenize(req, res); });
    });

    if (!opt.web_dir.empty()) {
      LOOM_CHECK(http.set_mount_point("/", opt.web_dir), "[serve] --web-dir {}: not a folder", opt.web_dir);
    } else {
      for (const WebAsset& a : web_assets()) {
        auto serve_asset = [&a](const httplib::Request&, httplib::Response& res) {
          res.set_content(a.data.data(), a.data.size(), std::string(a.content_type));
        };
        http.Get(std::string(a.path), serve_asset);
        if (a.path == "/index.html") http.Get("/", serve_asset);
      }
    }
  }

  bool authorized(const httplib::Request& req) const {
    if (opt.api_keys.empty()) return true;
    // The page and the health check are public; everything else needs a key.
    if (req.path == "/health" || route_label(req.path) == "/ (web)") return true;
    const std::string h = req.get_header_value("Authorization");
    const std::string_view prefix = "Bearer ";
    if (h.size() <= prefix.size() || h.compare(0, prefix.size(), prefix) != 0) return false;
    const std::string_view key = std::string_view(h).substr(prefix.size());
    bool ok = false;
    for (const auto& k : opt.api_keys) ok |= same_key(key, k);
    return ok;
  }

  json model_json() const {
    return {{"id", model_id},
            {"object", "model"},
            {"created", created},
            {"owned_by", "loom"},
            {"context_length", engine.ctx_size()}};
  }

  void tokenize(const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req);
    if (!body.is_object()) throw HttpError(400, "The request body must be a JSON object.", "", "invalid_value");
    const auto it = body.find("content");
    if (it == body.end() || !it->is_string())
      throw HttpError(400, "'content' must be a string.", "content", "invalid_type");
    auto flag = [&](const char* key, bool fallback) {
      const auto f = body.find(key);
      if (f == body.end() || f->is_null()) return fallback;
      if (!f->is_boolean()) throw HttpError(400, fmt::format("'{}' must be a boolean.", key), key, "invalid_type");
      return f->get<bool>();
    };
    const auto& tok = engine.tokenizer();
    // llama.cpp's defaults: no BOS unless add_special, special-token text recognised.
    const auto ids = tok.encode(it->get<std::string>(),
                                {.add_bos = flag("add_special", false) && tok.default_add_bos(),
                                 .parse_special = flag("parse_special", true)});
    json tokens = json::array();
    if (flag("with_pieces", false)) {
      for (int32_t id : ids) {
        const std::string piece = tok.token_bytes(id, true);
        json p = piece;
        try {
          (void)p.dump();  // throws on bytes that are not UTF-8: those go as a list of bytes, as llama.cpp does
        } catch (const json::type_error&) {
          p = json::array();
          for (unsigned char c : piece) p.push_back(int(c));
        }
        tokens.push_back({{"id", id}, {"piece", p}});
      }
    } else {
      tokens = ids;
    }
    send(res, 200, {{"tokens", tokens}});
  }

  void detokenize(const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req);
    if (!body.is_object()) throw HttpError(400, "The request body must be a JSON object.", "", "invalid_value");
    const auto it = body.find("tokens");
    if (it == body.end() || !it->is_array())
      throw HttpError(400, "'tokens' must be an array of token ids.", "tokens", "invalid_type");
    const auto& tok = engine.tokenizer();
    std::vector<int32_t> ids;
    for (const auto& t : *it) {
      if (!t.is_number_integer())
        throw HttpError(400, "'tokens' must be an array of token ids.", "tokens", "invalid_type");
      const int64_t id = t.get<int64_t>();
      if (id < 0 || id >= tok.vocab_size())
        throw HttpError(400, fmt::format("token id {} is outside the vocabulary (0..{}).", id, tok.vocab_size() - 1),
                        "tokens", "invalid_value");
      ids.push_back(int32_t(id));
    }
    send(res, 200, {{"content", tok.decode(ids)}});
  }

  void log_done(const Job& job, const ResponseBuilder& rb, Clock::time_point start, bool disconnected) {
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    metrics.observe_request_seconds(seconds);
    if (!opt.log_requests) return;
    const auto& ev = rb.final_event();
    const double gen_s = ev.total_seconds - ev.first_token_seconds;
    std::fprintf(stderr,
                 "loom serve: %s%s: prompt %lld tokens (%lld cached), %lld generated, %s, first token %.3f s, "
                 "%.1f tok/s, %.3f s\n",
                 job.endpoint == Endpoint::Chat ? "chat" : "completion", job.stream ? " (stream)" : "",
                 static_cast<long long>(ev.usage.prompt_tokens), static_cast<long long>(ev.usage.cached_prompt_tokens),
                 static_cast<long long>(rb.tokens()),
                 disconnected ? "client went away" : engine::finish_reason_name(ev.reason), ev.first_token_seconds,
                 gen_s > 0 && rb.tokens() > 1 ? double(rb.tokens() - 1) / gen_s : 0.0, seconds);
  }

  void complete(const httplib::Request& req, httplib::Response& res, Endpoint endpoint) {
    const auto start = Clock::now();
    const json body = parse_body(req);
    Job job = endpoint == Endpoint::Chat ? parser.chat(body) : parser.completion(body);
    auto stream = std::make_shared<RequestStream>();
    // (The request moves to the engine; `job` keeps what shapes the answer.)
    stream->attach(engine.submit(std::move(job.request), [stream](const engine::Event& ev) { stream->push(ev); }));
    auto rb = std::make_shared<ResponseBuilder>(
        job, request_id(endpoint == Endpoint::Chat ? "chatcmpl-" : "cmpl-", next_id.fetch_add(1)),
        int64_t(std::time(nullptr)));

    if (!job.stream) {
      metrics.generation_started();
      // Nothing is written until the answer is complete, so a client that
      // hangs up is seen on its socket: the request is cancelled then, which
      // frees its KV blocks at the engine's next step.
      const ClientConnection client(req.remote_addr, req.remote_port, req.local_addr, req.local_port);
      std::vector<engine::Event> events;
      while (!rb->finished()) {
        if (stopping.load()) {
          stream->cancel();
          metrics.generation_ended();
          throw HttpError(503, "The server is shutting down.", "", "server_shutting_down", "server_error");
        }
        stream->wait(events, kPoll);
        for (const auto& ev : events) rb->add(ev);
        if (!rb->finished() && client.closed()) {
          stream->cancel();
          metrics.count_disconnect();
          metrics.generation_ended();
          log_done(job, *rb, start, true);
          // Nobody reads it; the status (nginx's "client closed request") is what the request metric counts.
          send_error(res, HttpError(499, "The client closed the connection before the answer was complete.", "",
                                    "client_closed_request"));
          return;
        }
      }
      metrics.generation_ended();
      log_done(job, *rb, start, false);
      send(res, rb->failed() ? 500 : 200, rb->body());
      return;
    }

    // Streaming: httplib calls the provider until it calls done() or returns
    // false; the releaser runs when the response is destroyed, finished or not.
    struct State {
      std::shared_ptr<RequestStream> stream;
      std::shared_ptr<ResponseBuilder> rb;
      Job job;
      Clock::time_point start, last_write;
      bool opened = false, released = false;
      std::vector<engine::Event> events;
    };
    auto st = std::make_shared<State>();
    st->stream = stream;
    st->rb = rb;
    st->job = std::move(job);
    st->start = st->last_write = start;
    metrics.generation_started();
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");  // a proxy in front must not hold the tokens back
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, st](size_t, httplib::DataSink& sink) {
          auto write = [&](const std::string& s) {
            if (s.empty()) return true;
            if (!sink.write(s.data(), s.size())) return false;
            st->last_write = Clock::now();
            return true;
          };
          if (!st->opened) {
            st->opened = true;
            if (!write(st->rb->sse_open())) return false;
          }
          if (stopping.load()) return false;
          if (!st->stream->wait(st->events, kPoll)) {
            // Nothing to send yet. A comment line keeps proxies from timing
            // out, and a failed write tells us the client has gone away.
            if (Clock::now() - st->last_write >= kHeartbeat) return write(": keep-alive\n\n");
            return true;
          }
          std::string out;
          for (const auto& ev : st->events) out += st->rb->sse_event(ev);
          if (!write(out)) return false;
          if (st->rb->finished()) sink.done();
          return true;
        },
        [this, st](bool) {
          if (st->released) return;
          st->released = true;
          const bool gone = !st->rb->finished();
          if (gone) {  // the client went away (or the server is stopping): free the KV blocks now
            st->stream->cancel();
            metrics.count_disconnect();
          }
          metrics.generation_ended();
          log_done(st->job, *st->rb, st->start, gone);
        });
  }
};

Server::Server(engine::Engine& engine, ServerOptions options)
    : impl_(std::make_unique<Impl>(engine, std::move(options))) {}

Server::~Server() { stop(); }

int Server::bind() {
  if (impl_->port >= 0) return impl_->port;
  const auto& o = impl_->opt;
  if (o.port == 0) {
    impl_->port = impl_->http.bind_to_any_port(o.host);
  } else {
    impl_->port = impl_->http.bind_to_port(o.host, o.port) ? o.port : -1;
  }
  LOOM_CHECK(impl_->port > 0,
             "[serve] cannot listen on {}:{} (address in use, or not an address of this machine); pick another "
             "--host or --port (--port 0 picks a free one)",
             o.host, o.port);
  if (impl_->listen_fd >= 0) ::listen(impl_->listen_fd, SOMAXCONN);  // Linux: a second listen() sets the backlog
  return impl_->port;
}

void Server::listen() {
  bind();
  if (impl_->stopping.load()) return;
  impl_->http.listen_after_bind();
}

void Server::stop() {
  impl_->stopping.store(true);
  impl_->http.stop();
}

int Server::port() const { return impl_->port; }
const std::string& Server::model_id() const { return impl_->model_id; }
const RequestParser& Server::parser() const { return impl_->parser; }

}  // namespace loom::serve
