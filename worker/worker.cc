#include "worker/worker.h"

#include <cblas.h>
#include <omp.h>
#include <unistd.h>

#include <chrono>

#include "core/data_plan.h"
#include "core/file_util.h"
#include "core/random.h"
#include "core/spec.h"
#include "worker/batch_prefetcher.h"

namespace tessera {
namespace {

using Clock = std::chrono::steady_clock;

// With --overlap-push, gradients are sent once this much has gathered.
constexpr uint64_t kMinOverlapPushBytes = 512 * 1024;

// How often a worker reports training progress to the scheduler.
constexpr auto kProgressInterval = std::chrono::milliseconds(500);

}  // namespace

Status Worker::Run() {
  if (options_.threads > 0) {
    openblas_set_num_threads(options_.threads);
    omp_set_num_threads(options_.threads);  // oneDNN's threads
  }
  ASSIGN_OR_RETURN(std::string endpoint, NormalizeEndpoint(options_.scheduler));
  scheduler_endpoint_ = endpoint;
  ASSIGN_OR_RETURN(scheduler_, transport_->Connect(SocketKind::kDealer, endpoint));
  // One pass per cluster the worker joins: the first, and one after each
  // rollback (a server was lost; the job goes back to its newest checkpoint).
  while (true) {
    Status ran = JoinAndTrain();
    if (!rollback_received_) return ran;
    LOG(WARNING) << "the job rolls back: " << rollback_reason_ << "; registering again";
    rollback_received_ = false;
    kv_.reset();
    heartbeat_.reset();
    model_.reset();
    inbox_.clear();
    job_id_ = 0;
    rank_ = -1;
    params_version_ = -1;
  }
}

Status Worker::JoinAndTrain() {
  proto::Header reg;
  reg.set_op(proto::REGISTER);
  reg.set_sender_role(proto::WORKER);
  reg.mutable_register_()->set_role(proto::WORKER);
  reg.mutable_register_()->set_pid(getpid());
  RETURN_IF_ERROR(scheduler_->Send(reg));

  auto map = WaitScheduler(proto::CLUSTER_MAP, options_.register_timeout_s * 1000);
  if (!map.ok()) {
    if (shutdown_received_ && shutdown_reason_.empty()) {
      LOG(INFO) << "the job ended before this worker joined it";
      return OkStatus();
    }
    if (map.status().code() == StatusCode::kDeadlineExceeded) {
      return UnavailableError("no cluster map from the scheduler at " + scheduler_endpoint_ + " within " +
                              std::to_string(options_.register_timeout_s) + " s");
    }
    return map.status();
  }
  RETURN_IF_ERROR(Setup(map->header));

  while (true) {
    auto m = WaitScheduler(proto::START_PHASE, -1);
    if (!m.ok()) {
      if (shutdown_received_ && shutdown_reason_.empty()) {
        LOG(INFO) << "worker " << rank_ << " done";
        return OkStatus();
      }
      return m.status();
    }
    const proto::Phase& phase = m->header.phase();
    Status ran = phase.test() ? RunEvaluation(phase) : RunTraining(phase);
    if (shutdown_received_ && shutdown_reason_.empty()) {
      LOG(INFO) << "worker " << rank_ << " stopped by the scheduler during a phase";
      return OkStatus();
    }
    RETURN_IF_ERROR(ran);
  }
}

Status Worker::LoadData(const proto::DataSpec& data) {
  const auto start = Clock::now();
  ASSIGN_OR_RETURN(ImageDataset train, LoadImageDataset(DataPath(data, data.train_images()),
                                                        DataPath(data, data.train_labels()), data.max_train_examples()));
  ASSIGN_OR_RETURN(ImageDataset test, LoadImageDataset(DataPath(data, data.test_images()),
                                                       DataPath(data, data.test_labels()), data.max_test_examples()));
  train_ = std::make_unique<ImageDataset>(std::move(train));
  test_ = std::make_unique<ImageDataset>(std::move(test));
  LOG(INFO) << "worker loaded " << train_->count << " training and " << test_->count << " test examples in "
            << std::chrono::duration<double>(Clock::now() - start).count() << " s";
  return OkStatus();
}

Status Worker::Setup(const proto::Header& map_message) {
  map_ = map_message.cluster_map();
  job_id_ = map_message.job_id();
  rank_ = map_.rank();
  RETURN_IF_ERROR(ValidateJobSpec(map_.spec()));
  // Beat from now on: loading the data can take a while.
  heartbeat_ = std::make_unique<HeartbeatSender>(transport_, scheduler_endpoint_, proto::WORKER, rank_, job_id_,
                                                 map_.spec().cluster().heartbeat_interval_ms(),
                                                 map_.spec().cluster().heartbeat_timeout_ms());

  const proto::DataSpec& data = map_.spec().data();
  if (train_ == nullptr) RETURN_IF_ERROR(LoadData(data));
  if (train_->count != map_.train_examples() || test_->count != map_.test_examples()) {
    return FailedPreconditionError("this worker sees " + std::to_string(train_->count) + "/" +
                                   std::to_string(test_->count) + " train/test examples, the scheduler " +
                                   std::to_string(map_.train_examples()) + "/" + std::to_string(map_.test_examples()));
  }

  ASSIGN_OR_RETURN(model_, Model::Create(map_.spec().model(), Shape{1, train_->rows, train_->cols}, train_->num_classes,
                                                options_.device));
  if (model_->num_keys() != map_.num_keys()) {
    return FailedPreconditionError("model has " + std::to_string(model_->num_keys()) + " keys, the cluster map " +
                                   std::to_string(map_.num_keys()));
  }
  RETURN_IF_ERROR(CheckDatasetInputs(*train_, data.mean(), data.std(), *model_, "training set"));
  RETURN_IF_ERROR(CheckDatasetInputs(*test_, data.mean(), data.std(), *model_, "test set"));
  std::vector<ServerEndpoint> servers;
  for (const proto::ServerInfo& s : map_.servers()) {
    ServerEndpoint e;
    e.address = s.address();
    for (const proto::KeyRange& r : s.ranges()) e.ranges.push_back({r.begin(), r.end()});
    RETURN_IF_ERROR(ValidateRanges(e.ranges, map_.num_keys()));
    servers.push_back(std::move(e));
  }
  kv_ = std::make_unique<KvClient>(transport_, std::move(servers), rank_, job_id_);
  kv_->set_stop(stop_, heartbeat_->lost_flag());
  // A SHUTDOWN or ROLLBACK from the scheduler ends a wait for parameters;
  // anything else it sends meanwhile waits in the inbox.
  kv_->set_interrupt(scheduler_.get(), [this]() {
    auto m = scheduler_->Receive(0);
    if (!m.ok()) return false;
    if (m->header.op() == proto::SHUTDOWN) {
      shutdown_received_ = true;
      shutdown_reason_ = m->header.shutdown().reason();
      return true;
    }
    if (m->header.op() == proto::ROLLBACK) {
      rollback_received_ = true;
      rollback_reason_ = m->header.rollback().reason();
      return true;
    }
    inbox_.push_back(std::move(m).value());
    return false;
  });
  kv_->set_sparse(model_->sparse_tensors(), &model_->touched_runs());
  kv_->set_sparse_pulls(!model_->sparse_tensors().empty());
  RETURN_IF_ERROR(kv_->Connect());
  RETURN_IF_ERROR(kv_->Pull(0));
  return kv_->WaitParams(model_->params(), options_.reply_timeout_s * 1000, &params_version_);
}

Status Worker::RunTraining(const proto::Phase& phase) {
  const proto::JobSpec& spec = map_.spec();
  const int batch = spec.batch_size();
  const bool bsp = spec.consistency() == proto::BSP;
  const std::vector<int64_t> order = EpochOrder(spec.seed(), phase.epoch(), train_->count);
  BatchPrefetcher reader(train_.get(), spec.data().mean(), spec.data().std());
  std::vector<float> x;
  std::vector<uint8_t> labels;

  proto::Lease lease;
  lease.set_shard(-2);  // none requested yet
  int64_t position = 0;
  bool data_left = true;
  int64_t step = phase.first_step();
  // Resumed inside this epoch: pass over the batches of the steps done before.
  int64_t to_skip = bsp ? phase.skip_steps() : 0;
  if (bsp && params_version_ != phase.first_step() + to_skip) {
    // Joined the job after it started: the parameters as of this phase's first step.
    RETURN_IF_ERROR(kv_->Pull(phase.first_step() + to_skip));
    RETURN_IF_ERROR(kv_->WaitParams(model_->params(), options_.reply_timeout_s * 1000, &params_version_,
                                    phase.first_step() + to_skip));
  }
  int64_t skipped_examples = 0;
  double loss_sum = 0, epoch_loss = 0;
  int64_t examples = 0, epoch_examples = 0, steps_done = 0;
  auto last_report = Clock::now();
  // Step time, split: reading + forward/backward; handing gradients to
  // ZeroMQ (inside backward when overlapped); waiting for the parameters.
  double compute_seconds = 0, push_seconds = 0, wait_seconds = 0;
  const uint64_t pushed_bytes_at_start = kv_->pushed_bytes();
  const uint64_t pulled_bytes_at_start = kv_->pulled_bytes();
  int64_t pushed_steps = 0;
  auto step_start = Clock::now();

  auto report = [&](bool force) -> Status {
    if (!force && Clock::now() - last_report < kProgressInterval) return OkStatus();
    last_report = Clock::now();
    proto::Header h;
    h.set_op(proto::PROGRESS);
    h.mutable_progress()->set_epoch(phase.epoch());
    h.mutable_progress()->set_step(step);
    h.mutable_progress()->set_loss_sum(loss_sum);
    h.mutable_progress()->set_examples(examples);
    loss_sum = 0;
    examples = 0;
    return SendToScheduler(h);
  };

  // The step pushed last, while its parameters are due. The worker reads its
  // next batch before it waits for them, so that with sparse pulls it asks
  // only for the embedding rows that batch reads.
  struct DueStep {
    bool due = false;
    int64_t count = 0;
    BatchStats stats;
    Clock::time_point pushed;
  } pushed_step;
  // Waits for the parameters after pushed_step; `next_rows`: the sparse rows
  // the next step reads, nullptr when the phase ends (every row then, so that
  // the worker's parameters are the servers'); `read_seconds`: time spent
  // since the push reading the next batch.
  auto await_params = [&](const std::vector<KeyRange>* next_rows, double read_seconds) -> Status {
    const int64_t version = bsp ? step + 1 : 0;  // BSP: the reply must be this step's parameters
    if (kv_->sparse_pulls()) RETURN_IF_ERROR(kv_->PullRows(version, next_rows ? *next_rows : model_->sparse_tensors()));
    // Mid-phase, with --overlap-pull, each layer goes on to the device (CUDA)
    // as soon as its slices are in, while the rest still comes; the next
    // TrainBatch follows at once. At the phase's end the next pass may be an
    // evaluation.
    KvClient::SliceWritten on_slice = nullptr;
    if (options_.overlap_pull && next_rows != nullptr) on_slice = [this](KeyRange keys) { model_->ParamsArrived(keys); };
    RETURN_IF_ERROR(
        kv_->WaitParams(model_->params(), options_.reply_timeout_s * 1000, &params_version_, version, on_slice));
    const auto communicated = Clock::now();
    wait_seconds += std::chrono::duration<double>(communicated - pushed_step.pushed).count() - read_seconds;
    compute_seconds += read_seconds;
    step_start = communicated;
    pushed_step.due = false;
    ++step;
    ++steps_done;
    ++pushed_steps;
    loss_sum += pushed_step.stats.loss_sum;
    examples += pushed_step.count;
    epoch_loss += pushed_step.stats.loss_sum;
    epoch_examples += pushed_step.count;
    return report(false);
  };

  while (true) {
    RETURN_IF_ERROR(CheckStop());
    const auto read_start = Clock::now();
    if (bsp && steps_done + (pushed_step.due ? 1 : 0) >= phase.steps()) break;
    // Next batch: the rest of the current shard up to `batch` examples.
    int64_t count = 0;
    // An empty shard (more shards than examples) is skipped: it has no steps.
    while (data_left && (lease.shard() < 0 || position >= lease.end())) {
      RETURN_IF_ERROR(RequestLease(phase.epoch(), &lease));
      if (lease.shard() < 0) {
        data_left = false;
      } else {
        position = lease.begin();
        if (lease.begin() < 0 || lease.end() > train_->count || lease.end() < lease.begin()) {
          return DataLossError("lease of positions [" + std::to_string(lease.begin()) + ", " +
                               std::to_string(lease.end()) + ") outside the training set");
        }
      }
    }
    if (!data_left && !bsp) break;
    if (to_skip > 0) {  // only before the phase's first push
      if (data_left) {
        const int64_t passed = std::min<int64_t>(batch, lease.end() - position);
        position += passed;
        skipped_examples += passed;
      }
      --to_skip;
      ++step;
      ++steps_done;
      continue;
    }
    if (data_left) {
      count = std::min<int64_t>(batch, lease.end() - position);
      reader.Read(order, position, count, lease.end(), &x, &labels);
      position += count;
    }
    if (pushed_step.due) {
      const std::vector<KeyRange> rows =
          kv_->sparse_pulls() ? model_->SparseRowsOf(x.data(), count) : std::vector<KeyRange>{};
      RETURN_IF_ERROR(await_params(&rows, std::chrono::duration<double>(Clock::now() - read_start).count()));
    }
    // Gradients go out as soon as backward has made them, overlapping the
    // layers before them, or all at once after it. Layers come last first,
    // so their key ranges join into one; it is sent once it holds
    // kMinOverlapPushBytes (every message costs both sides, so small layers
    // ride along with the next), and the rest after backward.
    Status pushed;
    double step_push_seconds = 0;
    KeyRange unsent{0, 0};
    auto push_unsent = [&] {
      const auto start = Clock::now();
      if (pushed.ok() && !unsent.empty()) pushed = kv_->PushKeys(step, count, model_->grads(), unsent, true);
      step_push_seconds += std::chrono::duration<double>(Clock::now() - start).count();
      unsent = {0, 0};
    };
    Model::GradsReady push_layer = nullptr;
    if (options_.overlap_push) {
      push_layer = [&](KeyRange keys) {
        if (!unsent.empty() && keys.end != unsent.begin) push_unsent();  // not adjacent: cannot join
        unsent = unsent.empty() ? keys : KeyRange{keys.begin, unsent.end};
        if (unsent.size() * sizeof(float) >= kMinOverlapPushBytes) push_unsent();
      };
    }
    const BatchStats stats =
        model_->TrainBatch(x.data(), labels.data(), count, MixSeed(map_.spec().seed(), rank_, step), push_layer);
    if (options_.overlap_push) push_unsent();
    auto computed = Clock::now();
    compute_seconds += std::chrono::duration<double>(computed - step_start).count() - step_push_seconds;
    if (!options_.overlap_push) {
      pushed = kv_->Push(step, count, model_->grads(), /*want_params=*/true);
      const auto sent = Clock::now();
      step_push_seconds += std::chrono::duration<double>(sent - computed).count();
      computed = sent;
    }
    push_seconds += step_push_seconds;
    RETURN_IF_ERROR(pushed);
    pushed_step = {true, count, stats, computed};
  }
  if (pushed_step.due) RETURN_IF_ERROR(await_params(nullptr, 0));
  RETURN_IF_ERROR(report(true));
  proto::Header done;
  done.set_op(proto::PHASE_DONE);
  done.mutable_phase_done()->set_epoch(phase.epoch());
  done.mutable_phase_done()->set_loss_sum(epoch_loss);
  done.mutable_phase_done()->set_examples(epoch_examples);
  done.mutable_phase_done()->set_steps(steps_done);
  done.mutable_phase_done()->set_skipped_examples(skipped_examples);
  done.mutable_phase_done()->set_part(phase.part());
  // For the checkpoint manifest: under BSP these are the servers' parameters now.
  if (rank_ == phase.reporter_rank()) done.mutable_phase_done()->set_params_sha256(model_->ParamsSha256());
  done.mutable_phase_done()->set_compute_seconds(compute_seconds);
  done.mutable_phase_done()->set_push_seconds(push_seconds);
  done.mutable_phase_done()->set_push_bytes(kv_->pushed_bytes() - pushed_bytes_at_start);
  done.mutable_phase_done()->set_pull_bytes(kv_->pulled_bytes() - pulled_bytes_at_start);
  done.mutable_phase_done()->set_pushed_steps(pushed_steps);
  done.mutable_phase_done()->set_communication_seconds(wait_seconds);
  return SendToScheduler(done);
}

Status Worker::RunEvaluation(const proto::Phase& phase) {
  // Every push has been applied by now (the scheduler starts evaluation only
  // after all workers finished the epoch), so the current parameters are final.
  RETURN_IF_ERROR(kv_->Pull(0));
  RETURN_IF_ERROR(kv_->WaitParams(model_->params(), options_.reply_timeout_s * 1000, &params_version_));
  const int batch = std::max(map_.spec().batch_size(), 256);
  BatchPrefetcher reader(test_.get(), map_.spec().data().mean(), map_.spec().data().std());
  const std::vector<int64_t> natural_order;
  std::vector<float> x;
  std::vector<uint8_t> labels;
  BatchStats total;
  while (true) {
    RETURN_IF_ERROR(CheckStop());
    proto::Lease lease;
    RETURN_IF_ERROR(RequestLease(phase.epoch(), &lease));
    if (lease.shard() < 0) break;
    if (!lease.test() || lease.begin() < 0 || lease.end() > test_->count || lease.end() < lease.begin()) {
      return DataLossError("bad test lease [" + std::to_string(lease.begin()) + ", " + std::to_string(lease.end()) + ")");
    }
    for (int64_t p = lease.begin(); p < lease.end(); p += batch) {
      const int64_t count = std::min<int64_t>(batch, lease.end() - p);
      reader.Read(natural_order, p, count, lease.end(), &x, &labels);
      const BatchStats s = model_->EvaluateBatch(x.data(), labels.data(), count);
      total.loss_sum += s.loss_sum;
      total.correct += s.correct;
      total.examples += s.examples;
    }
  }
  proto::Header done;
  done.set_op(proto::PHASE_DONE);
  proto::PhaseDone* d = done.mutable_phase_done();
  d->set_epoch(phase.epoch());
  d->set_test(true);
  d->set_loss_sum(total.loss_sum);
  d->set_examples(total.examples);
  d->set_correct(total.correct);
  d->set_part(phase.part());
  if (phase.final() && rank_ == phase.reporter_rank()) {
    d->set_params_sha256(model_->ParamsSha256());
    if (!options_.params_out.empty()) {
      const std::string bytes(reinterpret_cast<const char*>(model_->params()), model_->num_keys() * sizeof(float));
      RETURN_IF_ERROR(WriteFileAtomic(options_.params_out, bytes));
    }
  }
  return SendToScheduler(done);
}

Status Worker::RequestLease(int epoch, proto::Lease* lease) {
  proto::Header h;
  h.set_op(proto::LEASE_REQUEST);
  h.mutable_lease_request()->set_epoch(epoch);
  RETURN_IF_ERROR(SendToScheduler(h));
  ASSIGN_OR_RETURN(Message m, WaitScheduler(proto::LEASE, options_.reply_timeout_s * 1000));
  *lease = m.header.lease();
  return OkStatus();
}

StatusOr<Message> Worker::WaitScheduler(proto::Op op, int timeout_ms) {
  const auto deadline = timeout_ms < 0 ? Clock::time_point::max() : Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    RETURN_IF_ERROR(CheckStop());
    if (Clock::now() > deadline) {
      return DeadlineExceededError("no " + proto::Op_Name(op) + " from the scheduler within " +
                                   std::to_string(timeout_ms) + " ms");
    }
    if (!inbox_.empty()) {
      Message queued = std::move(inbox_.front());
      inbox_.pop_front();
      if (queued.header.op() == op) return queued;
      LOG(WARNING) << "ignoring " << proto::Op_Name(queued.header.op()) << " while waiting for " << proto::Op_Name(op);
      continue;
    }
    auto m = scheduler_->Receive(200);
    if (!m.ok()) {
      if (m.status().code() != StatusCode::kDeadlineExceeded) {
        LOG(WARNING) << "dropped a malformed message from the scheduler: " << m.status().ToString();
      }
      continue;
    }
    if (m->header.op() == proto::SHUTDOWN) {
      shutdown_received_ = true;
      shutdown_reason_ = m->header.shutdown().reason();
      if (shutdown_reason_.empty()) return AbortedError("shutdown");
      return AbortedError("scheduler ended the job: " + shutdown_reason_);
    }
    if (m->header.op() == proto::ROLLBACK) {
      rollback_received_ = true;
      rollback_reason_ = m->header.rollback().reason();
      return AbortedError("the job rolls back: " + rollback_reason_);
    }
    if (m->header.op() == op) return m;
    LOG(WARNING) << "ignoring " << proto::Op_Name(m->header.op()) << " while waiting for " << proto::Op_Name(op);
  }
}

Status Worker::CheckStop() const {
  if (stop_->load()) return AbortedError("stopped by signal");
  if (heartbeat_ != nullptr && heartbeat_->lost()) {
    return UnavailableError("lost the scheduler at " + scheduler_endpoint_ + ": no answer to heartbeats");
  }
  return OkStatus();
}

Status Worker::SendToScheduler(proto::Header h) {
  h.set_job_id(job_id_);
  h.set_sender_role(proto::WORKER);
  h.set_sender_rank(rank_);
  return scheduler_->Send(h);
}

}  // namespace tessera
