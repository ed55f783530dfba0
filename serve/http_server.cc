#include "serve/http_server.h"

#include <glog/logging.h>
#include <httplib.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <set>
#include <string>
#include <vector>

#include "core/json.h"
#include "export/model_repository_layout.h"
#include "serve/kserve.h"
#include "serve/limited_http_server.h"

namespace tessera {
namespace {

constexpr char kJson[] = "application/json";

void Reply(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, kJson);
}

// 404 for a missing model or version, 400 for other client mistakes, 500 for the rest.
int HttpStatus(const Status& status) {
  switch (status.code()) {
    case StatusCode::kNotFound: return 404;
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kUnavailable: return 503;
    default: return 500;
  }
}

// The version in a path: 0 when absent; NotFound for text that is no version.
StatusOr<int64_t> PathVersion(const httplib::Request& req, size_t index) {
  if (req.matches.size() <= index || req.matches[index].length() == 0) return int64_t{0};
  const int64_t version = ParseVersion(req.matches[index].str());
  if (version < 1) return NotFoundError("no version '" + req.matches[index].str().substr(0, 40) + "' (versions are 1, 2, ...)");
  return version;
}

}  // namespace

KServeHttpServer::KServeHttpServer(ModelRepository* repository, ServeMetrics* metrics, const HttpLimits& limits)
    : repository_(repository),
      metrics_(metrics),
      // The health endpoints stay answered however many connections are open.
      server_(std::make_unique<LimitedHttpServer>(limits, std::set<std::string>{"/v2/health/live", "/v2/health/ready"})) {
  httplib::Server& s = *server_;
  s.set_tcp_nodelay(true);  // headers and body go out in separate writes: no Nagle delay
  // httplib's own socket options set SO_REUSEPORT, which lets a second server
  // bind the same port and silently take half the connections: SO_REUSEADDR
  // only, so a taken port is an error. And the socket, to widen its backlog.
  s.set_socket_options([this](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    listen_socket_ = sock;
  });

  // Infer requests count in the request metrics, everything else as "other".
  s.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    const bool infer = req.method == "POST" && req.path.ends_with("/infer");
    if (!infer) {
      metrics_->OtherRequest(res.status);
    } else if (req.matches.empty()) {
      metrics_->Request(res.status, -1);  // refused before its handler ran (e.g. 413)
    }
  });
  s.set_error_handler([max_request_bytes = limits.max_request_bytes](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // our own JSON error
    std::string message;
    if (res.status == 404) {
      message = "no such endpoint: " + req.method + " " + req.path.substr(0, 200);
    } else if (res.status == 413) {
      message = "request body larger than " + std::to_string(max_request_bytes) + " bytes (--max-request-bytes)";
    } else if (res.status == 400) {
      message = "bad HTTP request";
    } else {
      message = "HTTP status " + std::to_string(res.status);
    }
    res.set_content(ErrorJson(message), kJson);
  });
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = std::string("internal error: ") + e.what();
    } catch (...) {
    }
    Reply(res, 500, ErrorJson(what));
  });

  s.Get("/v2/health/live", [](const httplib::Request&, httplib::Response& res) {
    Reply(res, 200, JsonObject().Add("live", true).ToCompactString());
  });
  s.Get("/v2/health/ready", [this](const httplib::Request&, httplib::Response& res) {
    const bool ready = !repository_->Newest().empty();
    Reply(res, ready ? 200 : 503, JsonObject().Add("ready", ready).ToCompactString());
  });
  s.Get("/v2", [](const httplib::Request&, httplib::Response& res) {
    JsonObject server;
    server.Add("name", "tessera").Add("version", "1").Add("extensions", std::vector<std::string>{});
    Reply(res, 200, server.ToCompactString());
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.status = 200;
    res.set_content(metrics_->Render(repository_->Newest()), "text/plain; version=0.0.4");
  });
  s.Get(R"(/v2/models/([^/]+)(?:/versions/([^/]+))?/ready)", [this](const httplib::Request& req, httplib::Response& res) {
    auto version = PathVersion(req, 2);
    auto served = version.ok() ? repository_->Find(req.matches[1].str(), *version) : StatusOr<std::shared_ptr<ServedModel>>(version.status());
    if (!served.ok()) return Reply(res, HttpStatus(served.status()), ErrorJson(served.status().message()));
    Reply(res, 200, JsonObject().Add("name", (*served)->name()).Add("ready", true).ToCompactString());
  });
  s.Get(R"(/v2/models/([^/]+)(?:/versions/([^/]+))?)", [this](const httplib::Request& req, httplib::Response& res) {
    auto version = PathVersion(req, 2);
    auto served = version.ok() ? repository_->Find(req.matches[1].str(), *version) : StatusOr<std::shared_ptr<ServedModel>>(version.status());
    if (!served.ok()) return Reply(res, HttpStatus(served.status()), ErrorJson(served.status().message()));
    const std::vector<int64_t> versions =
        *version == 0 ? repository_->Versions(req.matches[1].str()) : std::vector<int64_t>{*version};
    Reply(res, 200, ModelMetadataJson(**served, versions));
  });
  s.Post(R"(/v2/models/([^/]+)(?:/versions/([^/]+))?/infer)", [this](const httplib::Request& req, httplib::Response& res) {
    const auto start = std::chrono::steady_clock::now();
    auto finish = [&](int status, const std::string& body) {
      Reply(res, status, body);
      metrics_->Request(status, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    };
    if (req.has_header("Inference-Header-Content-Length")) {
      return finish(400, ErrorJson("the binary tensor data extension is not supported: send JSON data"));
    }
    auto version = PathVersion(req, 2);
    if (!version.ok()) return finish(404, ErrorJson(version.status().message()));
    // The version is fixed here: a newer one loaded meanwhile does not affect this request.
    auto served = repository_->Find(req.matches[1].str(), *version);
    if (!served.ok()) return finish(HttpStatus(served.status()), ErrorJson(served.status().message()));
    auto request = ParseInferRequest(req.body, **served);
    if (!request.ok()) return finish(400, ErrorJson(request.status().message()));
    auto logits = (*served)->Infer(request->x.data(), request->batch,
                                   request->sparse_ids.empty() ? nullptr : request->sparse_ids.data());
    if (!logits.ok()) return finish(HttpStatus(logits.status()), ErrorJson(logits.status().message()));
    finish(200, InferResponseJson(*request, **served, *logits));
  });
}

KServeHttpServer::~KServeHttpServer() = default;

StatusOr<int> KServeHttpServer::Bind(const std::string& host, int port) {
  int bound = port;
  if (port == 0) {
    bound = server_->bind_to_any_port(host);
    if (bound <= 0) return UnavailableError("cannot listen on " + host + " (any port)");
  } else if (!server_->bind_to_port(host, port)) {
    return UnavailableError("cannot listen on " + host + ":" + std::to_string(port) + " (in use, or not an address here)");
  }
  // httplib listens with a backlog of 5: a burst of new connections (32
  // clients starting at once) overflows it, and the kernel then drops or
  // resets some of them. listen() again on the bound socket widens it.
  if (listen_socket_ >= 0 && ::listen(listen_socket_, kListenBacklog) != 0) {
    LOG(WARNING) << "cannot widen the listen backlog: " << std::strerror(errno);
  }
  return bound;
}

bool KServeHttpServer::Listen() { return server_->listen_after_bind(); }

void KServeHttpServer::Stop() { server_->stop(); }

}  // namespace tessera
