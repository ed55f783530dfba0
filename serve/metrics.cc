#include "serve/metrics.h"

#include <charconv>
#include <cmath>

#include "core/json.h"

namespace tessera {
namespace {

std::string Number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return ec == std::errc() ? std::string(buf, end) : std::to_string(v);
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  std::lock_guard<std::mutex> lock(mu_);
  ++counts_[i];
  sum_ += value;
  ++count_;
}

std::string Histogram::Render(const std::string& name, const std::string& help) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out = "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  int64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i];
    const double le = i < bounds_.size() ? bounds_[i] : INFINITY;
    out += name + "_bucket{le=\"" + Number(le) + "\"} " + std::to_string(cumulative) + "\n";
  }
  out += name + "_sum " + Number(sum_) + "\n" + name + "_count " + std::to_string(count_) + "\n";
  return out;
}

ServeMetrics::ServeMetrics()
    : latency_({0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10}),
      batch_size_({1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}) {}

void ServeMetrics::Request(int status, double seconds) {
  ++requests_;
  if (seconds >= 0) latency_.Observe(seconds);
  if (status >= 400) {
    std::lock_guard<std::mutex> lock(mu_);
    ++errors_[status];
  }
}

void ServeMetrics::Batch(int64_t examples) {
  ++batches_;
  examples_ += examples;
  batch_size_.Observe(static_cast<double>(examples));
}

void ServeMetrics::OtherRequest(int status) {
  ++other_requests_;
  if (status >= 400) {
    std::lock_guard<std::mutex> lock(mu_);
    ++other_errors_[status];
  }
}

std::string ServeMetrics::Render(const std::map<std::string, int64_t>& served) const {
  std::string out;
  out += "# HELP tessera_serve_requests_total Inference requests received (every status).\n"
         "# TYPE tessera_serve_requests_total counter\n"
         "tessera_serve_requests_total " + std::to_string(requests_.load()) + "\n";
  int64_t errors = 0;
  std::string by_code, other_by_code;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [code, n] : errors_) {
      errors += n;
      by_code += "tessera_serve_request_errors_by_code_total{code=\"" + std::to_string(code) + "\"} " + std::to_string(n) + "\n";
    }
    for (const auto& [code, n] : other_errors_) {
      other_by_code += "tessera_serve_other_errors_total{code=\"" + std::to_string(code) + "\"} " + std::to_string(n) + "\n";
    }
  }
  out += "# HELP tessera_serve_request_errors_total Inference requests answered with a 4xx or 5xx status.\n"
         "# TYPE tessera_serve_request_errors_total counter\n"
         "tessera_serve_request_errors_total " + std::to_string(errors) + "\n";
  out += "# HELP tessera_serve_request_errors_by_code_total Failed inference requests by HTTP status.\n"
         "# TYPE tessera_serve_request_errors_by_code_total counter\n" + by_code;
  out += "# HELP tessera_serve_other_requests_total Health, metadata, metrics and unknown-path requests.\n"
         "# TYPE tessera_serve_other_requests_total counter\n"
         "tessera_serve_other_requests_total " + std::to_string(other_requests_.load()) + "\n";
  out += "# HELP tessera_serve_other_errors_total Other requests answered with a 4xx or 5xx status, by status.\n"
         "# TYPE tessera_serve_other_errors_total counter\n" + other_by_code;
  out += latency_.Render("tessera_serve_request_latency_seconds",
                         "Inference request latency, from the request's arrival to its response, in seconds.");
  out += batch_size_.Render("tessera_serve_batch_size", "Examples per model pass (requests batched together).");
  out += "# HELP tessera_serve_examples_total Examples inferred.\n# TYPE tessera_serve_examples_total counter\n"
         "tessera_serve_examples_total " + std::to_string(examples_.load()) + "\n";
  out += "# HELP tessera_serve_model_version The version each model serves by default (the newest loaded).\n"
         "# TYPE tessera_serve_model_version gauge\n";
  for (const auto& [name, version] : served) {
    out += "tessera_serve_model_version{model=" + JsonQuote(name) + "} " + std::to_string(version) + "\n";
  }
  return out;
}

}  // namespace tessera
