// One loaded version of a model, ready to serve: the Tessera Model rebuilt
// from model.onnx, its input normalization, and a batching thread that runs
// the requests queued for it together (up to max_batch_size examples, or
// whatever has come once the first queued request has waited
// max_batch_delay). Requests hold a shared_ptr, so a version replaced by a
// newer one finishes what it has started; the last reference stops its thread.
#ifndef TESSERA_SERVE_SERVED_MODEL_H_
#define TESSERA_SERVE_SERVED_MODEL_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "export/onnx_import.h"
#include "models/model.h"

namespace tessera {

struct BatchOptions {
  // Where models run (int8 ones on the CPU whatever this says).
  Device device = Device::kCpu;
  int64_t max_batch_size = 64;
  std::chrono::microseconds max_batch_delay{2000};
  // Called with the examples of every pass the batching thread runs.
  std::function<void(int64_t examples)> on_batch;
};

class ServedModel {
 public:
  // Reads MODEL_REPO/NAME/VERSION (ReadModelVersion) and builds the model.
  static StatusOr<std::shared_ptr<ServedModel>> Load(const std::string& version_dir, const std::string& name,
                                                     int64_t version, const BatchOptions& options);
  ~ServedModel();
  ServedModel(const ServedModel&) = delete;
  ServedModel& operator=(const ServedModel&) = delete;

  const std::string& name() const { return name_; }
  int64_t version() const { return version_; }
  const Shape& input_shape() const { return files_.model.input_shape; }
  int64_t input_features() const { return NumElements(files_.model.input_shape); }
  int num_classes() const { return files_.model.num_classes; }
  bool has_probabilities() const { return files_.model.has_probabilities; }
  const std::string& input_name() const { return files_.model.input_name; }
  const InputNormalization& normalization() const { return files_.normalization; }
  const ModelVersionFiles& files() const { return files_; }

  // InvalidArgument naming the first of the n values of x (normalized) the
  // model does not take: a value that is not an id in [0, num_embeddings)
  // for a model whose first layer is an embedding (Model::ValidateInputValues).
  // Safe from any thread: it reads only what the model fixed when it was built.
  Status ValidateInput(const float* x, int64_t n) const;

  // Runs x (n examples of input_features, normalized) with whatever else is
  // queued, blocking until done: n * num_classes logits. A model over a
  // sparse table also takes each example's ids, [n * its id slots]
  // (kNoSparseId: an empty slot), whose rows of the table (zeros for an id
  // it does not hold) are bound when the batch runs; null for other models
  // (InvalidArgument when that does not match the model). Internal when the
  // model fails.
  StatusOr<std::vector<float>> Infer(const float* x, int64_t n, const uint64_t* ids = nullptr);

 private:
  struct Job;
  ServedModel() = default;
  void Loop();
  void Run(const std::vector<Job*>& jobs, int64_t total);
  // Run's work: the jobs' examples in pieces of max_batch_size, their
  // logits into batch_logits_ (sized by Run); for a model over a sparse
  // table each piece's rows bound first. Throw std::runtime_error when the
  // model fails.
  void RunDense(const std::vector<Job*>& jobs, int64_t total);
  void RunSparse(const std::vector<Job*>& jobs, int64_t total);

  std::string name_;
  int64_t version_ = 0;
  ModelVersionFiles files_;
  BatchOptions options_;
  std::unique_ptr<Model> model_;  // used by the batching thread only
  std::vector<float> batch_x_, batch_logits_;
  std::vector<float> batch_rows_;  // a sparse table's rows of the running piece

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job*> queue_;
  int64_t queued_examples_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace tessera

#endif  // TESSERA_SERVE_SERVED_MODEL_H_
