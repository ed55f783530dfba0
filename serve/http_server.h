// `tessera serve`'s HTTP front: the KServe v2 REST endpoints over
// cpp-httplib, answering from a ModelRepository.
//
//   GET  /v2/health/live, /v2/health/ready   200 {"live"|"ready": true} (ready: a model is loaded; else 503)
//   GET  /v2                                 server metadata
//   GET  /v2/models/NAME[/versions/V]        model metadata
//   GET  /v2/models/NAME[/versions/V]/ready  200 when loaded
//   POST /v2/models/NAME[/versions/V]/infer  inference (kserve.h)
//   GET  /metrics                            Prometheus text
// Every error is a 4xx/5xx with a one-line {"error": "..."}. Slow, large and
// lying requests meet the limits of LimitedHttpServer (http_limits.h).
#ifndef TESSERA_SERVE_HTTP_SERVER_H_
#define TESSERA_SERVE_HTTP_SERVER_H_

#include <cstddef>
#include <memory>
#include <string>

#include "core/status.h"
#include "serve/http_limits.h"
#include "serve/metrics.h"
#include "serve/model_repository.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace tessera {

class KServeHttpServer {
 public:
  // *repository and *metrics must outlive this.
  KServeHttpServer(ModelRepository* repository, ServeMetrics* metrics, const HttpLimits& limits);
  ~KServeHttpServer();

  // Binds host:port (0: any free port) and returns the port. Unavailable when it cannot.
  StatusOr<int> Bind(const std::string& host, int port);
  // Serves until Stop(). False when it could not listen.
  bool Listen();
  // Thread-safe; makes Listen return.
  void Stop();

 private:
  ModelRepository* repository_;
  ServeMetrics* metrics_;
  std::unique_ptr<httplib::Server> server_;
  int listen_socket_ = -1;  // the listening socket, once bound
  static constexpr int kListenBacklog = 1024;
};

}  // namespace tessera

#endif  // TESSERA_SERVE_HTTP_SERVER_H_
