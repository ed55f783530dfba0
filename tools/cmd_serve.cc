// `tessera serve --model-repo DIR`: serves the models of a model repository
// (what `tessera export` writes) over HTTP with the KServe v2 REST protocol,
// batching concurrent requests and picking up new versions while serving.
#include <gflags/gflags.h>
#include <glog/logging.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "core/file_util.h"
#include "models/device.h"
#include "serve/http_server.h"
#include "serve/metrics.h"
#include "serve/model_repository.h"
#include "tools/command.h"
#include "tools/role_flags.h"
#include "tools/signals.h"

DEFINE_string(model_repo, "", "serve: the model repository, MODEL_REPO/NAME/VERSION/{model.onnx,manifest.json} as "
                              "tessera export writes it (required)");
DEFINE_int32(max_batch_size, 64, "serve: most examples the model runs in one pass; concurrent requests are batched "
                                 "up to it (a larger request runs in pieces of it)");
DEFINE_double(max_batch_delay_ms, 2, "serve: how long the first queued request waits for others to batch with "
                                     "(milliseconds; 0: run whatever is queued at once)");
DEFINE_int32(poll_interval_ms, 1000, "serve: how often the model repository is scanned for new and removed versions "
                                     "(milliseconds)");
DEFINE_int32(http_threads, 64, "serve: HTTP worker threads, the most connections served at once (keep-alive "
                               "connections hold one each); beyond them a connection gets only /v2/health/* "
                               "answered, anything else 503, from 8 spare threads");
DEFINE_int64(max_request_bytes, int64_t{64} << 20, "serve: the largest request body in bytes; larger gets 413 from "
                                                   "its Content-Length, before the body is read");
DEFINE_int64(max_inflight_bytes, int64_t{128} << 20, "serve: the most request-body bytes handled at once, all "
                                                     "requests together (a JSON body costs 3 (FP32) to 12 (UINT8) "
                                                     "times its size while parsed); a request beyond gets 503");
DEFINE_int32(header_timeout_ms, 10000, "serve: a request's line and headers must arrive within this from its first "
                                       "byte, else 408 (milliseconds)");
DEFINE_int32(body_timeout_ms, 30000, "serve: a request's body must arrive within this after its headers, else 408 "
                                     "(milliseconds)");

namespace tessera {
namespace {

// OpenMP's worker threads (oneDNN's compute) spin for a while after every
// parallel region by default. Between passes of a server that is mostly
// waiting on HTTP threads, the spinning takes the cores those threads need:
// measured on 2 cores, 32 clients of fmnist-cnn got about 250 requests/s
// with spinning and 2,000-2,400 without. libgomp reads OMP_WAIT_POLICY when
// it loads, so when the user has not set it, set PASSIVE and run this same
// command again (same pid and arguments). Returns only when it does not.
void EnsurePassiveOpenMpWait() {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  auto cmdline = ReadFileToString("/proc/self/cmdline");
  if (!cmdline.ok() || cmdline->empty()) return;
  std::vector<std::string> args;
  for (size_t start = 0; start < cmdline->size();) {
    const size_t end = cmdline->find('\0', start);
    args.push_back(cmdline->substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  execv("/proc/self/exe", argv.data());
  LOG(WARNING) << "could not re-execute with OMP_WAIT_POLICY=PASSIVE: " << std::strerror(errno);
}

}  // namespace

int RunServe(const ParsedArgs& args) {
  const Command& command = FindCommand("serve");
  if (!args.positional.empty()) return UsageError(command, "unexpected argument '" + args.positional[0] + "'");
  if (FLAGS_model_repo.empty()) return UsageError(command, "--model-repo DIR is required");
  if (FLAGS_max_batch_size < 1) return UsageError(command, "--max-batch-size must be >= 1");
  if (!(FLAGS_max_batch_delay_ms >= 0 && FLAGS_max_batch_delay_ms <= 10000)) {
    return UsageError(command, "--max-batch-delay-ms must be in [0, 10000]");
  }
  if (FLAGS_poll_interval_ms < 10) return UsageError(command, "--poll-interval-ms must be >= 10");
  if (FLAGS_http_threads < 1 || FLAGS_http_threads > 4096) return UsageError(command, "--http-threads must be in [1, 4096]");
  if (FLAGS_max_request_bytes < 1) return UsageError(command, "--max-request-bytes must be >= 1");
  if (FLAGS_max_inflight_bytes < FLAGS_max_request_bytes) {
    return UsageError(command, "--max-inflight-bytes must be >= --max-request-bytes (" +
                                   std::to_string(FLAGS_max_request_bytes) + "), got " +
                                   std::to_string(FLAGS_max_inflight_bytes));
  }
  if (FLAGS_header_timeout_ms < 1) return UsageError(command, "--header-timeout-ms must be >= 1");
  if (FLAGS_body_timeout_ms < 1) return UsageError(command, "--body-timeout-ms must be >= 1");
  auto port_flag = PortFlag(args, /*default_port=*/8500);
  if (!port_flag.ok()) return UsageError(command, port_flag.status().message());
  const int port = *port_flag;
  const std::string host = FLAGS_host.empty() ? "127.0.0.1" : FLAGS_host;
  EnsurePassiveOpenMpWait();
  auto device = ResolveDevice(FLAGS_device);
  if (!device.ok()) return UsageError(command, device.status().message());

  ServeMetrics metrics;
  BatchOptions batching;
  batching.device = *device;
  batching.max_batch_size = FLAGS_max_batch_size;
  batching.max_batch_delay = std::chrono::microseconds(static_cast<int64_t>(FLAGS_max_batch_delay_ms * 1000));
  batching.on_batch = [&metrics](int64_t examples) { metrics.Batch(examples); };
  ModelRepository repository(FLAGS_model_repo, batching);
  auto errors = repository.Poll(/*log=*/false);
  if (!errors.ok()) return UsageError(command, errors.status().message());
  if (repository.Newest().empty()) {
    return UsageError(command, errors->empty() ? "no model in " + FLAGS_model_repo + " (it needs NAME/VERSION/model.onnx "
                                                 "and manifest.json, as tessera export writes them)"
                                               : "no model loads from " + FLAGS_model_repo + ": " + errors->front());
  }
  for (const std::string& error : *errors) LOG(WARNING) << "cannot load " << error << " (retried when its files change)";
  LOG(INFO) << "models run on " << DeviceName(*device) << " (--device=" << FLAGS_device << "; int8 models on the cpu)";
  for (const auto& [name, version] : repository.Newest()) {
    LOG(INFO) << "serving " << name << " version " << version << " (versions loaded: " << repository.Versions(name).size()
              << ")";
  }

  const std::atomic<bool>* stop = InstallStopSignals();
  HttpLimits limits;
  limits.max_connections = FLAGS_http_threads;
  limits.max_request_bytes = static_cast<uint64_t>(FLAGS_max_request_bytes);
  limits.max_inflight_bytes = static_cast<uint64_t>(FLAGS_max_inflight_bytes);
  limits.header_timeout = std::chrono::milliseconds(FLAGS_header_timeout_ms);
  limits.body_timeout = std::chrono::milliseconds(FLAGS_body_timeout_ms);
  KServeHttpServer server(&repository, &metrics, limits);
  auto bound = server.Bind(host, port);
  if (!bound.ok()) return UsageError(command, bound.status().message());
  repository.StartPolling(std::chrono::milliseconds(FLAGS_poll_interval_ms));
  std::atomic<bool> listening_ended{false};
  std::thread watcher([&] {
    while (!stop->load() && !listening_ended.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (stop->load()) {
      LOG(INFO) << "stopping (signal " << StopSignal() << ")";
      server.Stop();
      // Requests in flight get 2 s to finish; idle keep-alive connections
      // would hold the HTTP threads for their whole timeout.
      for (int i = 0; i < 20 && !listening_ended.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (!listening_ended.load()) {
        LOG(INFO) << "stopped";
        std::cout.flush();
        std::_Exit(kExitInterrupted);
      }
    }
  });
  std::cout << "serving on " << host << ":" << *bound << std::endl;
  const bool listened = server.Listen();
  listening_ended = true;
  watcher.join();
  repository.StopPolling();
  if (!stop->load()) {
    LOG(ERROR) << "the HTTP server stopped by itself" << (listened ? "" : " (listen failed)");
    return kExitFailure;
  }
  return kExitInterrupted;
}

}  // namespace tessera
