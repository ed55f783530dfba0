#include "serve/served_model.h"

#include <glog/logging.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <future>
#include <stdexcept>

#include "export/runtime_model.h"
#include "export/sparse_table_rows.h"
#include "worker/sparse_batch.h"

namespace tessera {

struct ServedModel::Job {
  const float* x = nullptr;
  const uint64_t* ids = nullptr;  // a sparse table's ids, [n * id slots]
  int64_t n = 0;
  std::chrono::steady_clock::time_point queued;
  std::vector<float> logits;
  Status status;
  std::promise<void> done;
};

StatusOr<std::shared_ptr<ServedModel>> ServedModel::Load(const std::string& version_dir, const std::string& name,
                                                         int64_t version, const BatchOptions& options) {
  std::shared_ptr<ServedModel> served(new ServedModel());
  served->name_ = name;
  served->version_ = version;
  served->options_ = options;
  served->options_.max_batch_size = std::max<int64_t>(1, options.max_batch_size);
  ASSIGN_OR_RETURN(served->files_, ReadModelVersion(version_dir));
  auto model = BuildRuntimeModel(served->files_.model, options.device);
  if (!model.ok()) return model.status().WithContext(version_dir);
  served->model_ = std::move(model).value();
  // The batching thread runs every pass (oneDNN's engine and stream are per
  // thread, and so are the primitives a layer caches per batch size). It
  // warms up first, so the version is fully ready when Load returns.
  std::promise<bool> warm;
  std::future<bool> warmed = warm.get_future();
  served->thread_ = std::thread([raw = served.get(), &warm] {
    std::vector<float> zeros(raw->input_features(), 0.0f);
    bool ok = false;
    try {
      ok = raw->model_->Infer(zeros.data(), 1) != nullptr;
    } catch (const std::exception& e) {
      LOG(ERROR) << raw->name_ << " version " << raw->version_ << ": warm-up failed: " << e.what();
    }
    warm.set_value(ok);
    raw->Loop();
  });
  if (!warmed.get()) return InternalError(version_dir + ": the model fails on a zero input");
  return served;
}

ServedModel::~ServedModel() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Status ServedModel::ValidateInput(const float* x, int64_t n) const { return model_->ValidateInputValues(x, n); }

StatusOr<std::vector<float>> ServedModel::Infer(const float* x, int64_t n, const uint64_t* ids) {
  if (n <= 0) return InvalidArgumentError("no examples");
  if ((ids != nullptr) != (files_.model.sparse_table != nullptr)) {
    return InvalidArgumentError(ids != nullptr ? "ids for a model without a sparse table"
                                               : "a model over a sparse table needs its examples' ids");
  }
  Job job;
  job.x = x;
  job.ids = ids;
  job.n = n;
  job.queued = std::chrono::steady_clock::now();
  std::future<void> done = job.done.get_future();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return UnavailableError("the model is being unloaded");
    queue_.push_back(&job);
    queued_examples_ += n;
  }
  cv_.notify_all();
  done.wait();
  if (!job.status.ok()) return job.status;
  return std::move(job.logits);
}

void ServedModel::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, nothing left
    // Wait for a full batch, at most max_batch_delay after the first request came.
    const auto deadline = queue_.front()->queued + options_.max_batch_delay;
    while (!stop_ && queued_examples_ < options_.max_batch_size && std::chrono::steady_clock::now() < deadline) {
      cv_.wait_until(lock, deadline);
    }
    std::vector<Job*> jobs;
    int64_t total = 0;
    while (!queue_.empty() && (jobs.empty() || total + queue_.front()->n <= options_.max_batch_size)) {
      jobs.push_back(queue_.front());
      total += queue_.front()->n;
      queued_examples_ -= queue_.front()->n;
      queue_.pop_front();
    }
    lock.unlock();
    Run(jobs, total);
    lock.lock();
  }
}

void ServedModel::RunSparse(const std::vector<Job*>& jobs, int64_t total) {
  const int64_t features = input_features(), classes = num_classes();
  const int64_t slots = files_.model.spec.layer(0).sparse_embedding().fields();
  std::vector<uint64_t> ids;
  batch_x_.clear();
  for (const Job* job : jobs) {
    batch_x_.insert(batch_x_.end(), job->x, job->x + job->n * features);
    ids.insert(ids.end(), job->ids, job->ids + job->n * slots);
  }
  for (int64_t begin = 0; begin < total; begin += options_.max_batch_size) {
    const int64_t n = std::min(options_.max_batch_size, total - begin);
    float* x = batch_x_.data() + begin * features;
    // Each slot its row among the piece's rows, as training binds a batch's.
    auto batch = MakeSparseBatch(std::vector<uint64_t>(ids.begin() + begin * slots, ids.begin() + (begin + n) * slots),
                                 n, features - slots, slots, x);
    if (!batch.ok()) throw std::runtime_error(batch.status().message());
    GatherBatchRows(*files_.model.sparse_table, batch->ids, &batch_rows_);
    model_->BindSparseRows(batch_rows_.data(), /*row_grads=*/nullptr, static_cast<int64_t>(batch->ids.size()));
    const float* logits = model_->Infer(x, n);
    if (logits == nullptr) throw std::runtime_error("the model gave no logits");
    std::memcpy(batch_logits_.data() + begin * classes, logits, n * classes * sizeof(float));
    if (options_.on_batch) options_.on_batch(n);
  }
}

void ServedModel::RunDense(const std::vector<Job*>& jobs, int64_t total) {
  const int64_t features = input_features(), classes = num_classes();
  const float* x = jobs[0]->x;
  if (jobs.size() > 1) {
    batch_x_.resize(total * features);
    int64_t row = 0;
    for (const Job* job : jobs) {
      std::memcpy(batch_x_.data() + row * features, job->x, job->n * features * sizeof(float));
      row += job->n;
    }
    x = batch_x_.data();
  }
  // A request larger than max_batch_size runs in pieces of it.
  for (int64_t begin = 0; begin < total; begin += options_.max_batch_size) {
    const int64_t n = std::min(options_.max_batch_size, total - begin);
    const float* logits = model_->Infer(x + begin * features, n);
    if (logits == nullptr) throw std::runtime_error("the model gave no logits");
    std::memcpy(batch_logits_.data() + begin * classes, logits, n * classes * sizeof(float));
    if (options_.on_batch) options_.on_batch(n);
  }
}

void ServedModel::Run(const std::vector<Job*>& jobs, int64_t total) {
  const int64_t classes = num_classes();
  Status status;
  try {
    batch_logits_.resize(total * classes);
    if (files_.model.sparse_table != nullptr) {
      RunSparse(jobs, total);
    } else {
      RunDense(jobs, total);
    }
  } catch (const std::exception& e) {
    status = InternalError(std::string("inference failed: ") + e.what());
    LOG(ERROR) << name_ << " version " << version_ << ": " << status.message();
  }
  int64_t row = 0;
  for (Job* job : jobs) {
    job->status = status;
    if (status.ok()) {
      job->logits.assign(batch_logits_.begin() + row * classes, batch_logits_.begin() + (row + job->n) * classes);
    }
    row += job->n;
    job->done.set_value();
  }
}

}  // namespace tessera
