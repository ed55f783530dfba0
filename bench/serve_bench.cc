// serve_bench: `tessera serve` under load from concurrent batch-1 clients on
// loopback, beside the same load against an HTTP server (the same
// cpp-httplib, thread pool and keep-alive settings) whose handler does no
// work and answers a canned response of the same size: the ceiling. Reports
// throughput, p50/p99/mean latency and errors of both, and their ratio.
//
//   serve_bench --model-repo DIR [--model NAME] [--clients 32] [--seconds 30]
//               [--max-batch-size 64] [--max-batch-delay-ms 2] [--tessera PATH]
//
// bench/serve_bench.sh makes a repository (a short fmnist-cnn run, exported)
// and runs this.
#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "core/file_util.h"
#include "tools/child_process.h"

namespace {

using Clock = std::chrono::steady_clock;

struct LoadResult {
  int64_t ok = 0, errors = 0;
  std::string first_error;
  double seconds = 0;
  std::vector<double> latencies_ms;
};

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  std::nth_element(v.begin(), v.begin() + i, v.end());
  return v[i];
}

// `clients` threads, each with its own keep-alive connection, POSTing `body`
// back to back for `seconds` (after a short warm-up that is not counted).
LoadResult RunLoad(int port, const std::string& path, const std::string& body, int clients, double seconds) {
  std::atomic<bool> counting{false}, stop{false};
  std::vector<LoadResult> per(clients);
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      httplib::Client client("127.0.0.1", port);
      client.set_keep_alive(true);
      client.set_tcp_nodelay(true);
      client.set_read_timeout(60, 0);
      LoadResult& r = per[c];
      r.latencies_ms.reserve(1 << 16);
      while (!stop.load(std::memory_order_relaxed)) {
        const auto start = Clock::now();
        auto res = client.Post(path, body, "application/json");
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
        if (!counting.load(std::memory_order_relaxed)) continue;
        if (res && res->status == 200) {
          ++r.ok;
          r.latencies_ms.push_back(ms);
        } else {
          if (r.errors++ == 0) {
            r.first_error = res ? "HTTP " + std::to_string(res->status) + " " + res->body.substr(0, 200)
                                : "transport: " + httplib::to_string(res.error());
          }
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // warm-up: connections, primitives
  counting = true;
  const auto start = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  counting = false;
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  stop = true;
  for (auto& t : threads) t.join();
  LoadResult all;
  all.seconds = elapsed;
  for (LoadResult& r : per) {
    all.ok += r.ok;
    all.errors += r.errors;
    if (all.first_error.empty()) all.first_error = r.first_error;
    all.latencies_ms.insert(all.latencies_ms.end(), r.latencies_ms.begin(), r.latencies_ms.end());
  }
  return all;
}

struct Summary {
  double rps = 0, p50 = 0, p99 = 0, mean = 0;
  int64_t ok = 0, errors = 0;
  std::string first_error;
};

Summary Summarize(LoadResult r) {
  Summary s;
  s.ok = r.ok;
  s.errors = r.errors;
  s.first_error = r.first_error;
  s.rps = r.ok / r.seconds;
  double sum = 0;
  for (double v : r.latencies_ms) sum += v;
  s.mean = r.latencies_ms.empty() ? 0 : sum / r.latencies_ms.size();
  s.p50 = Percentile(r.latencies_ms, 0.50);
  s.p99 = Percentile(r.latencies_ms, 0.99);
  return s;
}

void Print(const char* label, const Summary& s) {
  std::printf("%-22s %10.0f req/s   p50 %7.3f ms   p99 %7.3f ms   mean %7.3f ms   ok %lld   errors %lld\n", label, s.rps,
              s.p50, s.p99, s.mean, static_cast<long long>(s.ok), static_cast<long long>(s.errors));
  if (s.errors > 0) std::printf("  first error: %s\n", s.first_error.c_str());
}

double MetricValue(const std::string& text, const std::string& key) {
  const size_t at = text.find("\n" + key + " ");
  return at == std::string::npos ? -1 : std::atof(text.c_str() + at + key.size() + 2);
}

int Usage(const std::string& message) {
  std::cerr << "serve_bench: " << message << "\n"
            << "usage: serve_bench --model-repo DIR [--model NAME] [--clients 32] [--seconds 30] [--max-batch-size 64]\n"
               "                   [--max-batch-delay-ms 2] [--http-threads 64] [--tessera PATH]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> flags = {{"model", ""},          {"clients", "32"},
                                              {"seconds", "30"},      {"max-batch-size", "64"},
                                              {"max-batch-delay-ms", "2"}, {"http-threads", "64"},
                                              {"model-repo", ""},     {"tessera", ""}};
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], value;
    if (arg.rfind("--", 0) != 0) return Usage("unexpected argument " + arg);
    arg = arg.substr(2);
    if (const size_t eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return Usage("--" + arg + " needs a value");
    }
    if (!flags.count(arg)) return Usage("unknown flag --" + arg);
    flags[arg] = value;
  }
  if (flags["model-repo"].empty()) return Usage("--model-repo is required");
  const int clients = std::atoi(flags["clients"].c_str());
  const double seconds = std::atof(flags["seconds"].c_str());
  if (clients < 1 || !(seconds > 0)) return Usage("--clients and --seconds must be positive");
  std::string model = flags["model"];
  if (model.empty()) {
    for (const auto& e : std::filesystem::directory_iterator(flags["model-repo"])) {
      if (e.is_directory() && e.path().filename().string()[0] != '.') model = e.path().filename().string();
    }
    if (model.empty()) return Usage("no model in " + flags["model-repo"]);
  }
  std::string tessera = flags["tessera"];
  if (tessera.empty()) {
    auto self = tessera::SelfExecutable();
    if (!self.ok()) return Usage("cannot find the tessera binary: pass --tessera");
    tessera = (std::filesystem::path(*self).parent_path().parent_path() / "tessera").string();
  }

  // The served model.
  const std::string log = "/tmp/serve_bench-" + std::to_string(getpid()) + ".log";
  auto child = tessera::ChildProcess::Start(
      "serve",
      {tessera, "serve", "--model-repo", flags["model-repo"], "--port", "0", "--max-batch-size", flags["max-batch-size"],
       "--max-batch-delay-ms", flags["max-batch-delay-ms"], "--http-threads", flags["http-threads"]},
      log);
  if (!child.ok()) return Usage(child.status().message());
  int port = 0;
  for (int i = 0; i < 600 && port == 0; ++i) {
    auto text = tessera::ReadFileToString(log);
    const std::string marker = "serving on 127.0.0.1:";
    if (text.ok() && text->find(marker) != std::string::npos) port = std::atoi(text->c_str() + text->find(marker) + marker.size());
    if ((*child)->Poll().has_value()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (port == 0) {
    auto text = tessera::ReadFileToString(log);
    std::cerr << (text.ok() ? *text : "") << "\n";
    return Usage("tessera serve did not start (log: " + log + ")");
  }

  // One batch-1 request (FP32, a fixed pseudo-random image of the model's shape).
  httplib::Client probe("127.0.0.1", port);
  auto meta = probe.Get("/v2/models/" + model);
  if (!meta || meta->status != 200) return Usage("no metadata for model " + model);
  int64_t features = 1;
  std::string shape = "[1";
  {
    // "shape":[-1,1,28,28] of the input: the dims after -1.
    const size_t at = meta->body.find("\"shape\":[-1");
    size_t pos = at + 11;
    while (meta->body[pos] == ',') {
      const int64_t d = std::atoll(meta->body.c_str() + pos + 1);
      features *= d;
      shape += "," + std::to_string(d);
      pos = meta->body.find_first_of(",]", pos + 1);
    }
    shape += "]";
  }
  std::string body = "{\"inputs\":[{\"name\":\"input\",\"shape\":" + shape + ",\"datatype\":\"FP32\",\"data\":[";
  uint32_t state = 12345;
  for (int64_t i = 0; i < features; ++i) {
    state = state * 1664525u + 1013904223u;
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%s%.6g", i ? "," : "", (state >> 8) / 16777216.0 * 3.0 - 0.8);
    body += buf;
  }
  body += "]}]}";
  const std::string path = "/v2/models/" + model + "/infer";
  auto first = probe.Post(path, body, "application/json");
  if (!first || first->status != 200) return Usage("the first request failed: " + (first ? first->body : std::string("no answer")));
  const std::string canned = first->body;

  // The ceiling: the same HTTP stack answering the canned response.
  httplib::Server noop;
  const size_t threads = std::max(1, std::atoi(flags["http-threads"].c_str()));
  noop.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  noop.set_keep_alive_max_count(100000);
  noop.set_tcp_nodelay(true);
  noop.set_keep_alive_timeout(5);
  noop.Post(R"(/v2/models/([^/]+)/infer)", [&canned](const httplib::Request&, httplib::Response& res) {
    res.set_content(canned, "application/json");
  });
  // As tessera serve does (serve/http_server.cc): httplib's backlog of 5
  // loses connections when 32 clients connect at once.
  int noop_socket = -1;
  noop.set_socket_options([&noop_socket](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    noop_socket = sock;
  });
  const int noop_port = noop.bind_to_any_port("127.0.0.1");
  if (noop_socket >= 0) ::listen(noop_socket, 1024);
  std::thread noop_thread([&] { noop.listen_after_bind(); });

  std::printf("serve_bench: model %s, %d clients, batch-1 requests of %zu bytes (responses %zu bytes), %.1f s each, "
              "--max-batch-size %s --max-batch-delay-ms %s, %u cores\n",
              model.c_str(), clients, body.size(), canned.size(), seconds, flags["max-batch-size"].c_str(),
              flags["max-batch-delay-ms"].c_str(), std::thread::hardware_concurrency());
  std::fflush(stdout);
  const Summary served = Summarize(RunLoad(port, path, body, clients, seconds));
  Print("tessera serve", served);
  std::fflush(stdout);
  const Summary ceiling = Summarize(RunLoad(noop_port, path, body, clients, seconds));
  Print("no-op handler (ceiling)", ceiling);
  auto metrics = probe.Get("/metrics");
  if (metrics && metrics->status == 200) {
    const double passes = MetricValue(metrics->body, "tessera_serve_batch_size_count");
    const double examples = MetricValue(metrics->body, "tessera_serve_batch_size_sum");
    std::printf("serve: %.0f model passes, mean batch %.2f examples; server-side errors %.0f\n", passes,
                passes > 0 ? examples / passes : 0.0, MetricValue(metrics->body, "tessera_serve_request_errors_total"));
  }
  std::printf("ratio serve/ceiling: throughput %.3f, p50 latency %.2fx, p99 latency %.2fx\n",
              ceiling.rps > 0 ? served.rps / ceiling.rps : 0.0, ceiling.p50 > 0 ? served.p50 / ceiling.p50 : 0.0,
              ceiling.p99 > 0 ? served.p99 / ceiling.p99 : 0.0);
  noop.stop();
  noop_thread.join();
  (*child)->Stop(3000);
  std::remove(log.c_str());
  return served.errors == 0 && ceiling.errors == 0 ? 0 : 1;
}
