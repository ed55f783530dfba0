// Prometheus metrics of `tessera serve` (text exposition format 0.0.4).
#ifndef TESSERA_SERVE_METRICS_H_
#define TESSERA_SERVE_METRICS_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace tessera {

// A cumulative histogram over fixed upper bounds (+Inf added).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);
  // "# HELP", "# TYPE", name_bucket{le=...}, name_sum, name_count lines.
  std::string Render(const std::string& name, const std::string& help) const;

 private:
  const std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<int64_t> counts_;  // per bound, not cumulative; the last is +Inf
  double sum_ = 0;
  int64_t count_ = 0;
};

class ServeMetrics {
 public:
  ServeMetrics();
  // One inference request finished with HTTP `status` after `seconds`
  // (< 0: unknown, refused before it was read; not in the latency histogram).
  void Request(int status, double seconds);
  // One pass of the model over `examples` examples.
  void Batch(int64_t examples);
  // Any other HTTP request (health, metadata, metrics, unknown paths).
  void OtherRequest(int status);
  // The whole exposition; `served`: model name -> the version served by default.
  std::string Render(const std::map<std::string, int64_t>& served) const;

 private:
  std::atomic<int64_t> requests_{0}, other_requests_{0}, examples_{0}, batches_{0};
  mutable std::mutex mu_;
  std::map<int, int64_t> errors_;  // infer requests by status >= 400
  std::map<int, int64_t> other_errors_;
  Histogram latency_, batch_size_;
};

}  // namespace tessera

#endif  // TESSERA_SERVE_METRICS_H_
