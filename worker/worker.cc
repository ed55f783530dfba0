#include "worker/worker.h"

#include <cblas.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "core/consistency.h"
#include "core/data_plan.h"
#include "core/file_util.h"
#include "core/process_memory.h"
#include "core/random.h"
#include "core/spec.h"
#include "core/task_metrics.h"
#include "worker/batch_prefetcher.h"
#include "worker/eval_metrics.h"

namespace tessera {
namespace {

using SteadyClock = std::chrono::steady_clock;  // not tessera::Clock (core/clock.h)

// With --overlap-push, gradients are sent once this much has gathered.
constexpr uint64_t kMinOverlapPushBytes = 512 * 1024;

// How often a worker reports training progress to the scheduler.
constexpr auto kProgressInterval = std::chrono::milliseconds(500);

// Adds this process's peak resident memory to a report, where the system says it.
void AddPeakMemory(proto::PhaseDone* done) {
  StatusOr<uint64_t> peak = PeakResidentBytes();
  if (peak.ok()) done->set_peak_rss_bytes(*peak);
}

}  // namespace

Status Worker::Run() {
  if (options_.threads > 0) {
    openblas_set_num_threads(options_.threads);
    omp_set_num_threads(options_.threads);  // oneDNN's threads
  }
  ASSIGN_OR_RETURN(std::string endpoint, NormalizeEndpoint(options_.scheduler));
  scheduler_endpoint_ = endpoint;
  ASSIGN_OR_RETURN(scheduler_, transport_->Connect(SocketKind::kDealer, endpoint,
                                                   {.server_public_key = options_.scheduler_public_key}));
  // One pass per cluster the worker joins: the first, and one after each
  // rollback (a server was lost; the job goes back to its newest checkpoint).
  while (true) {
    Status ran = JoinAndTrain();
    if (!rollback_received_) return ran;
    LOG(WARNING) << "the job rolls back: " << rollback_reason_ << "; registering again";
    rollback_received_ = false;
    kv_.reset();
    sparse_.reset();
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
  if (!options_.cluster_token.empty()) reg.mutable_register_()->set_token(options_.cluster_token);
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
  const auto start = SteadyClock::now();
  ASSIGN_OR_RETURN(train_, OpenExampleReader(data, map_, Split::kTraining));
  // A table's categorical ids (a vocabulary's map), checked and built by the
  // training reader, serve the other splits too.
  SharedCategoricalIds table_ids;
  if (const auto* table = dynamic_cast<const TableExampleReader*>(train_.get()); table != nullptr) {
    table_ids = table->ids();
  }
  if (HasValidationSplit(data)) {
    ASSIGN_OR_RETURN(validation_, OpenExampleReader(data, map_, Split::kValidation, table_ids));
  }
  ASSIGN_OR_RETURN(test_, OpenExampleReader(data, map_, Split::kTest, table_ids));
  LOG(INFO) << "worker opened " << train_->count() << " training, " << validation_count() << " validation and "
            << test_->count() << " test examples in "
            << std::chrono::duration<double>(SteadyClock::now() - start).count() << " s";
  return OkStatus();
}

Status Worker::Setup(const proto::Header& map_message) {
  map_ = map_message.cluster_map();
  job_id_ = map_message.job_id();
  rank_ = map_.rank();
  RETURN_IF_ERROR(ValidateJobSpec(map_.spec()));
  // Beat from now on: loading the data can take a while.
  heartbeat_ = std::make_unique<HeartbeatSender>(
      transport_, scheduler_endpoint_, options_.scheduler_public_key, proto::WORKER, rank_, job_id_,
      map_.spec().cluster().heartbeat_interval_ms(), map_.spec().cluster().heartbeat_timeout_ms());

  const proto::DataSpec& data = map_.spec().data();
  if (train_ == nullptr) RETURN_IF_ERROR(LoadData(data));
  if (train_->count() != map_.train_examples() || validation_count() != map_.validation_examples() ||
      test_->count() != map_.test_examples()) {
    return FailedPreconditionError("this worker sees " + std::to_string(train_->count()) + "/" +
                                   std::to_string(validation_count()) + "/" + std::to_string(test_->count()) +
                                   " training/validation/test examples, the scheduler " +
                                   std::to_string(map_.train_examples()) + "/" +
                                   std::to_string(map_.validation_examples()) + "/" +
                                   std::to_string(map_.test_examples()));
  }

  Device device = options_.device;
  if (options_.device_auto && !CheckDeviceLayers(map_.spec().model(), device).ok()) {
    LOG(INFO) << "computing on the CPU: " << CheckDeviceLayers(map_.spec().model(), device).message();
    device = Device::kCpu;
  }
  ASSIGN_OR_RETURN(model_, Model::Create(map_.spec().model(), train_->example_shape(), train_->num_classes(), device,
                                         train_->categorical_rows(), train_->sparse_features()));
  if (model_->num_keys() != map_.num_keys()) {
    return FailedPreconditionError("model has " + std::to_string(model_->num_keys()) + " keys, the cluster map " +
                                   std::to_string(map_.num_keys()));
  }
  LOG(INFO) << "model of " << model_->num_keys() << " parameters on examples of input "
            << ShapeText(train_->example_shape());
  // Tables and libsvm data are checked when their blocks are read.
  for (const auto& [reader, name] : {std::pair{train_.get(), "training set"}, std::pair{validation_.get(), "validation set"},
                                     std::pair{test_.get(), "test set"}}) {
    if (const auto* images = dynamic_cast<const ImageExampleReader*>(reader); images != nullptr) {
      RETURN_IF_ERROR(CheckDatasetInputs(images->dataset(), data.mean(), data.std(), *model_, name));
    }
  }
  std::vector<ServerEndpoint> servers;
  for (const proto::ServerInfo& s : map_.servers()) {
    ServerEndpoint e;
    e.address = s.address();
    e.public_key = s.curve_public_key();
    for (const proto::KeyRange& r : s.ranges()) e.ranges.push_back({r.begin(), r.end()});
    RETURN_IF_ERROR(ValidateRanges(e.ranges, map_.num_keys()));
    servers.push_back(std::move(e));
  }
  kv_ = std::make_unique<KvClient>(transport_, std::move(servers), rank_, job_id_);
  kv_->set_stop(stop_, heartbeat_->lost_flag());
  // A SHUTDOWN or ROLLBACK from the scheduler ends a wait for parameters;
  // anything else it sends meanwhile waits in the inbox.
  kv_->set_interrupt(scheduler_.get(), [this]() { return OnSchedulerMessage(); });
  ASSIGN_OR_RETURN(sparse_, WorkerSparseTable::Create(transport_, map_, job_id_, *model_,
                                                      NumElements(train_->example_shape()),
                                                      train_->ids_per_example()));
  if (sparse_ != nullptr) {
    sparse_->set_stop(stop_);
    sparse_->set_interrupt(scheduler_.get(), [this]() { return OnSchedulerMessage(); });
    // SSP: a step is pushed to every server's table, so every one must be known to be at most staleness behind.
    sparse_->set_pull_every_server(map_.spec().consistency() == proto::SSP);
    RETURN_IF_ERROR(sparse_->Connect());
  }
  kv_->set_sparse(model_->sparse_tensors(), &model_->touched_runs());
  kv_->set_sparse_pulls(!model_->sparse_tensors().empty());
  RETURN_IF_ERROR(kv_->Connect());
  RETURN_IF_ERROR(kv_->Pull(0));
  return kv_->WaitParams(model_->params(), options_.reply_timeout_s * 1000, &params_version_);
}

bool Worker::OnSchedulerMessage() {
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
}

uint64_t Worker::PushedBytes() const { return kv_->pushed_bytes() + (sparse_ ? sparse_->pushed_bytes() : 0); }
uint64_t Worker::PulledBytes() const { return kv_->pulled_bytes() + (sparse_ ? sparse_->pulled_bytes() : 0); }

// One training phase's state, shared by the steps of RunTraining.
struct Worker::TrainingPhase {
  TrainingPhase(const proto::Phase& phase, const proto::JobSpec& spec, ExampleReader* train, uint64_t pushed_bytes,
                uint64_t pulled_bytes)
      : phase(phase),
        batch(spec.batch_size()),
        synchronous(IsSynchronous(spec)),
        staleness(StalenessBound(spec)),
        order(TrainingOrder(spec.seed(), phase.epoch(), *train)),
        reader(train),
        step(phase.first_step()),
        to_skip(synchronous ? phase.skip_steps() : 0),
        pushed_bytes_at_start(pushed_bytes),
        pulled_bytes_at_start(pulled_bytes) {
    lease.set_shard(-2);  // none requested yet
  }

  const proto::Phase& phase;
  const int batch;
  const bool synchronous;  // BSP or SSP: the phase has `steps` steps, each summed over all workers
  const int64_t staleness;  // SSP's bound; 0 under BSP
  const ExampleOrder order;  // the epoch's order of the training set
  BatchPrefetcher reader;
  std::vector<float> x;  // the batch read last
  std::vector<float> labels;
  std::vector<uint64_t> ids;  // its 64-bit ids (a sparse table's data)

  proto::Lease lease;
  int64_t position = 0;    // the next position of the lease to read
  bool data_left = true;   // false once the scheduler has no shard left
  int64_t step;            // the global step the next push is
  int64_t to_skip;         // resumed inside this epoch: steps done before, passed over
  int64_t skipped_examples = 0;

  // steps_by_staleness[k]: the steps trained on parameters k steps old (BSP,
  // SSP), for PHASE_DONE and the log.
  std::vector<int64_t> steps_by_staleness;

  // Since the last PROGRESS; under BSP also step by step, for a checkpoint
  // cut inside the epoch (the scheduler keeps the sums up to it).
  double loss_sum = 0;
  int64_t examples = 0;
  std::vector<double> step_loss_sums;
  std::vector<int64_t> step_examples;
  SteadyClock::time_point last_report = SteadyClock::now();

  // The whole phase, for PHASE_DONE. Step time, split: reading +
  // forward/backward; handing gradients to ZeroMQ (inside backward when
  // overlapped); waiting for the parameters.
  double epoch_loss = 0;
  int64_t epoch_examples = 0, steps_done = 0, pushed_steps = 0;
  double compute_seconds = 0, push_seconds = 0, wait_seconds = 0;
  const uint64_t pushed_bytes_at_start, pulled_bytes_at_start;
  SteadyClock::time_point step_start = SteadyClock::now();

  // The step pushed last, while its parameters are due. The worker reads its
  // next batch before it waits for them, so that with sparse pulls it asks
  // only for the embedding rows that batch reads.
  struct DueStep {
    bool due = false;
    int64_t count = 0;
    BatchStats stats;
    SteadyClock::time_point pushed;
  } pushed_step;
};

namespace {

double SecondsSince(SteadyClock::time_point start) { return std::chrono::duration<double>(SteadyClock::now() - start).count(); }

// Counts a step trained on parameters `staleness` steps old into *counts (by staleness).
void CountStaleness(int64_t staleness, std::vector<int64_t>* counts) {
  const size_t k = static_cast<size_t>(std::max<int64_t>(0, staleness));
  if (counts->size() <= k) counts->resize(k + 1, 0);
  ++(*counts)[k];
}

// "steps by staleness: 0: 90, 1: 8, 2: 2; max staleness 2", for the log.
std::string StalenessLine(const std::vector<int64_t>& counts) {
  std::string line = "steps by staleness:";
  for (size_t k = 0; k < counts.size(); ++k) {
    line += (k == 0 ? " " : ", ") + std::to_string(k) + ": " + std::to_string(counts[k]);
  }
  return line + "; max staleness " + std::to_string(counts.empty() ? 0 : counts.size() - 1);
}

// Pushes one step's gradients while backward makes them (--overlap-push).
// Layers come last first, so their key ranges join into one; it is sent once
// it holds kMinOverlapPushBytes (every message costs both sides, so small
// layers ride along with the next), and the rest by Flush() after backward.
class OverlapPusher {
 public:
  // Borrows *kv and *model; both must outlive this.
  OverlapPusher(KvClient* kv, const Model* model, int64_t step, int64_t count)
      : kv_(kv), model_(model), step_(step), count_(count) {}

  // The gradients of `keys` are ready.
  void LayerReady(KeyRange keys) {
    if (!unsent_.empty() && keys.end != unsent_.begin) Flush();  // not adjacent: cannot join
    unsent_ = unsent_.empty() ? keys : KeyRange{keys.begin, unsent_.end};
    if (unsent_.size() * sizeof(float) >= kMinOverlapPushBytes) Flush();
  }

  // Sends what has gathered; after the first failed push it sends nothing more.
  void Flush() {
    const auto start = SteadyClock::now();
    // model_->grads() at each push, not kept: TrainBatch swaps in a new
    // buffer while ZeroMQ still holds the last step's.
    if (status_.ok() && !unsent_.empty()) {
      status_ = kv_->PushKeys(step_, count_, model_->grads(), unsent_, /*want_params=*/true);
    }
    seconds_ += SecondsSince(start);
    unsent_ = {0, 0};
  }

  // The first failed push's error, else OK.
  const Status& status() const { return status_; }
  // Time spent handing gradients to ZeroMQ.
  double seconds() const { return seconds_; }

 private:
  KvClient* kv_;
  const Model* model_;
  const int64_t step_, count_;
  KeyRange unsent_{0, 0};
  Status status_;
  double seconds_ = 0;
};

}  // namespace

// A training phase in outline: each pass of the loop is one step: take a
// lease when the shard is done, read a batch, wait for the parameters of the
// step pushed before, compute and push. The phase ends when BSP's steps are
// taken (or, under ASP, the data is), with its last parameters and a report.
Status Worker::RunTraining(const proto::Phase& phase) {
  RETURN_IF_ERROR(PullParamsForPhaseStart(phase));
  // Before the phase's prefetch thread starts: the reader augments each
  // example from (seed, epoch, index).
  train_->set_epoch(phase.epoch());
  TrainingPhase t(phase, map_.spec(), train_.get(), PushedBytes(), PulledBytes());
  // Resumed inside the epoch: this worker's loss sum goes on from its sum
  // before the cut, so it adds up as in a run that never stopped.
  if (rank_ < phase.resumed_loss_sums_size()) t.epoch_loss = phase.resumed_loss_sums(rank_);
  while (true) {
    RETURN_IF_ERROR(CheckStop());
    const auto read_start = SteadyClock::now();
    if (t.synchronous && t.steps_done + (t.pushed_step.due ? 1 : 0) >= phase.steps()) break;
    RETURN_IF_ERROR(LeaseShardIfDone(&t));
    if (!t.data_left && !t.synchronous) break;
    if (t.to_skip > 0) {  // only before the phase's first push
      SkipStep(&t);
      continue;
    }
    ASSIGN_OR_RETURN(const int64_t count, ReadBatch(&t));
    if (t.pushed_step.due) RETURN_IF_ERROR(AwaitParamsForBatch(&t, count, read_start));
    RETURN_IF_ERROR(ComputeAndPush(&t, count));
  }
  if (t.pushed_step.due) RETURN_IF_ERROR(AwaitParams(&t, /*next_rows=*/nullptr, /*read_seconds=*/0));
  RETURN_IF_ERROR(ReportProgress(&t, /*force=*/true));
  return SendTrainingDone(t);
}

Status Worker::PullParamsForPhaseStart(const proto::Phase& phase) {
  if (!IsSynchronous(map_.spec())) return OkStatus();
  // Resumed inside this epoch, the phase starts after the steps done before.
  const int64_t version = phase.first_step() + phase.skip_steps();
  if (params_version_ == version) return OkStatus();
  // Joined the job after it started: the parameters as of this phase's first step.
  RETURN_IF_ERROR(kv_->Pull(version));
  return kv_->WaitParams(model_->params(), options_.reply_timeout_s * 1000, &params_version_, version);
}

Status Worker::LeaseShardIfDone(TrainingPhase* t) {
  // An empty shard (more shards than examples) is skipped: it has no steps.
  while (t->data_left && (t->lease.shard() < 0 || t->position >= t->lease.end())) {
    RETURN_IF_ERROR(RequestLease(t->phase.epoch(), &t->lease));
    if (t->lease.shard() < 0) {
      t->data_left = false;
      continue;
    }
    t->position = t->lease.begin();
    if (t->lease.begin() < 0 || t->lease.end() > train_->count() || t->lease.end() < t->lease.begin()) {
      return DataLossError("lease of positions [" + std::to_string(t->lease.begin()) + ", " +
                           std::to_string(t->lease.end()) + ") outside the training set");
    }
  }
  return OkStatus();
}

void Worker::SkipStep(TrainingPhase* t) {
  if (t->data_left) {
    const int64_t passed = std::min<int64_t>(t->batch, t->lease.end() - t->position);
    t->position += passed;
    t->skipped_examples += passed;
  }
  --t->to_skip;
  ++t->step;
  ++t->steps_done;
}

StatusOr<int64_t> Worker::ReadBatch(TrainingPhase* t) {
  // Under BSP a worker without data still takes its steps, with no examples.
  if (!t->data_left) {
    if (sparse_ != nullptr) RETURN_IF_ERROR(sparse_->Prepare({}, 0, nullptr));
    return 0;
  }
  // The rest of the current shard up to a batch: a batch never spans two shards.
  const int64_t count = std::min<int64_t>(t->batch, t->lease.end() - t->position);
  RETURN_IF_ERROR(t->reader.Read(t->order, t->position, count, t->lease.end(), &t->x, &t->labels,
                                 sparse_ != nullptr ? &t->ids : nullptr));
  if (sparse_ != nullptr) RETURN_IF_ERROR(sparse_->Prepare(t->ids, count, t->x.data()));
  t->position += count;
  return count;
}

Status Worker::AwaitParamsForBatch(TrainingPhase* t, int64_t count, SteadyClock::time_point read_start) {
  const std::vector<KeyRange> rows =
      kv_->sparse_pulls() ? model_->SparseRowsOf(t->x.data(), count) : std::vector<KeyRange>{};
  return AwaitParams(t, &rows, SecondsSince(read_start));
}

Status Worker::AwaitParams(TrainingPhase* t, const std::vector<KeyRange>* next_rows, double read_seconds) {
  // BSP: the reply must be the parameters after this step; SSP: they may be
  // up to `staleness` steps older.
  const int64_t applied = t->step + 1;
  const int64_t version = t->synchronous ? std::max<int64_t>(0, applied - t->staleness) : 0;
  if (kv_->sparse_pulls()) RETURN_IF_ERROR(kv_->PullRows(version, next_rows ? *next_rows : model_->sparse_tensors()));
  // Mid-phase, with --overlap-pull, each layer goes on to the device (CUDA)
  // as soon as its slices are in, while the rest still comes; the next
  // TrainBatch follows at once. At the phase's end the next pass may be an
  // evaluation.
  KvClient::SliceWritten on_slice = nullptr;
  if (options_.overlap_pull && next_rows != nullptr) on_slice = [this](KeyRange keys) { model_->ParamsArrived(keys); };
  RETURN_IF_ERROR(
      kv_->WaitParams(model_->params(), options_.reply_timeout_s * 1000, &params_version_, version, on_slice));
  if (next_rows == nullptr && t->synchronous && params_version_ < applied) {
    // SSP's phase end: the parameters with every step applied, as under BSP
    // (the phase's digest, the evaluation and the next phase start from them).
    RETURN_IF_ERROR(kv_->Pull(applied));
    RETURN_IF_ERROR(kv_->WaitParams(model_->params(), options_.reply_timeout_s * 1000, &params_version_, applied));
  }
  const auto communicated = SteadyClock::now();
  t->wait_seconds += std::chrono::duration<double>(communicated - t->pushed_step.pushed).count() - read_seconds;
  t->compute_seconds += read_seconds;
  t->step_start = communicated;
  t->pushed_step.due = false;
  ++t->step;
  ++t->steps_done;
  ++t->pushed_steps;
  t->loss_sum += t->pushed_step.stats.loss_sum;
  t->examples += t->pushed_step.count;
  t->epoch_loss += t->pushed_step.stats.loss_sum;
  t->epoch_examples += t->pushed_step.count;
  if (t->synchronous) {
    t->step_loss_sums.push_back(t->pushed_step.stats.loss_sum);
    t->step_examples.push_back(t->pushed_step.count);
  }
  return ReportProgress(t, /*force=*/false);
}

Status Worker::ComputeAndPush(TrainingPhase* t, int64_t count) {
  if (options_.test_step_delay.count() > 0 && rank_ == options_.test_step_delay_rank) {
    std::this_thread::sleep_for(options_.test_step_delay);  // tests only: a slow worker
  }
  int64_t trained_version = params_version_;  // the lowest version of the parameters this step reads
  // Gradients go out as soon as backward has made them, overlapping the
  // layers before them (OverlapPusher), or all at once after it.
  if (sparse_ != nullptr) {
    // The batch's rows of the sparse table as of this step (BSP: once every
    // worker's push of the step before is applied; SSP: up to `staleness` steps before).
    const auto asked = SteadyClock::now();
    const int64_t version = t->synchronous ? std::max<int64_t>(0, t->step - t->staleness) : 0;
    int64_t rows_version = INT64_MAX;
    RETURN_IF_ERROR(
        sparse_->PullAndBind(version, model_.get(), options_.reply_timeout_s * 1000, &rows_version));
    trained_version = std::min(trained_version, rows_version);
    const double waited = SecondsSince(asked);
    t->wait_seconds += waited;
    t->compute_seconds -= waited;
  }
  if (t->synchronous) CountStaleness(t->step - trained_version, &t->steps_by_staleness);
  OverlapPusher pusher(kv_.get(), model_.get(), t->step, count);
  Model::GradsReady push_layer = nullptr;
  if (options_.overlap_push) push_layer = [&pusher](KeyRange keys) { pusher.LayerReady(keys); };
  const BatchStats stats = model_->TrainBatch(t->x.data(), t->labels.data(), count,
                                              MixSeed(map_.spec().seed(), rank_, t->step), push_layer);
  if (options_.overlap_push) pusher.Flush();
  Status pushed = pusher.status();
  // The sparse table's gradient rows, while the dense ones may still be on their way.
  const Status sparse_pushed = sparse_ != nullptr ? sparse_->Push(t->step, count) : OkStatus();
  double step_push_seconds = pusher.seconds();
  auto computed = SteadyClock::now();
  t->compute_seconds += std::chrono::duration<double>(computed - t->step_start).count() - step_push_seconds;
  if (!options_.overlap_push) {
    pushed = kv_->Push(t->step, count, model_->grads(), /*want_params=*/true);
    const auto sent = SteadyClock::now();
    step_push_seconds += std::chrono::duration<double>(sent - computed).count();
    computed = sent;
  }
  t->push_seconds += step_push_seconds;
  RETURN_IF_ERROR(pushed);
  RETURN_IF_ERROR(sparse_pushed);
  t->pushed_step = {true, count, stats, computed};
  return OkStatus();
}

Status Worker::ReportProgress(TrainingPhase* t, bool force) {
  if (!force && SteadyClock::now() - t->last_report < kProgressInterval) return OkStatus();
  t->last_report = SteadyClock::now();
  proto::Header h;
  h.set_op(proto::PROGRESS);
  h.mutable_progress()->set_epoch(t->phase.epoch());
  h.mutable_progress()->set_step(t->step);
  h.mutable_progress()->set_loss_sum(t->loss_sum);
  h.mutable_progress()->set_examples(t->examples);
  h.mutable_progress()->mutable_step_loss_sums()->Add(t->step_loss_sums.begin(), t->step_loss_sums.end());
  h.mutable_progress()->mutable_step_examples()->Add(t->step_examples.begin(), t->step_examples.end());
  t->loss_sum = 0;
  t->examples = 0;
  t->step_loss_sums.clear();
  t->step_examples.clear();
  return SendToScheduler(h);
}

Status Worker::SendTrainingDone(const TrainingPhase& t) {
  proto::Header done;
  done.set_op(proto::PHASE_DONE);
  proto::PhaseDone* d = done.mutable_phase_done();
  d->set_epoch(t.phase.epoch());
  d->set_loss_sum(t.epoch_loss);
  d->set_examples(t.epoch_examples);
  d->set_steps(t.steps_done);
  d->set_skipped_examples(t.skipped_examples);
  d->set_part(t.phase.part());
  // For the checkpoint manifest: under BSP these are the servers' parameters now.
  if (rank_ == t.phase.reporter_rank()) d->set_params_sha256(model_->ParamsSha256());
  d->set_compute_seconds(t.compute_seconds);
  d->set_push_seconds(t.push_seconds);
  d->set_push_bytes(PushedBytes() - t.pushed_bytes_at_start);
  d->set_pull_bytes(PulledBytes() - t.pulled_bytes_at_start);
  d->set_pushed_steps(t.pushed_steps);
  d->set_communication_seconds(t.wait_seconds);
  AddPeakMemory(d);
  if (t.synchronous) {
    LOG(INFO) << "epoch " << t.phase.epoch() + 1 << ": " << StalenessLine(t.steps_by_staleness);
  }
  if (map_.spec().consistency() == proto::SSP) {
    done.mutable_staleness_steps()->Add(t.steps_by_staleness.begin(), t.steps_by_staleness.end());
  }
  return SendToScheduler(done);
}

Status Worker::RunEvaluation(const proto::Phase& phase) {
  // Every push has been applied by now (the scheduler starts evaluation only
  // after all workers finished the epoch), so the current parameters are final.
  RETURN_IF_ERROR(kv_->Pull(0));
  RETURN_IF_ERROR(kv_->WaitParams(model_->params(), options_.reply_timeout_s * 1000, &params_version_));
  const int batch = std::max(map_.spec().batch_size(), kMinEvalBatch);
  ExampleReader* examples = phase.validation() ? validation_.get() : test_.get();
  if (examples == nullptr) return FailedPreconditionError("an evaluation of the validation set, and no validation split");
  BatchPrefetcher reader(examples);
  const ExampleOrder natural_order;
  std::vector<float> x;
  std::vector<float> labels;
  std::vector<uint64_t> ids;
  BatchStats total;
  EvalMetrics metrics(model_->task(), model_->num_classes());
  std::vector<float> outputs;
  while (true) {
    RETURN_IF_ERROR(CheckStop());
    proto::Lease lease;
    RETURN_IF_ERROR(RequestLease(phase.epoch(), &lease));
    if (lease.shard() < 0) break;
    if (!lease.test() || lease.begin() < 0 || lease.end() > examples->count() || lease.end() < lease.begin()) {
      return DataLossError(std::string("bad ") + (phase.validation() ? "validation" : "test") + " lease [" +
                           std::to_string(lease.begin()) + ", " + std::to_string(lease.end()) + ")");
    }
    for (int64_t p = lease.begin(); p < lease.end(); p += batch) {
      const int64_t count = std::min<int64_t>(batch, lease.end() - p);
      RETURN_IF_ERROR(reader.Read(natural_order, p, count, lease.end(), &x, &labels, sparse_ ? &ids : nullptr));
      if (sparse_ != nullptr) {
        // The table as of the parameters pulled above: every step of the epoch applied.
        RETURN_IF_ERROR(sparse_->Prepare(ids, count, x.data()));
        const int64_t version = IsSynchronous(map_.spec()) ? params_version_ : 0;
        RETURN_IF_ERROR(sparse_->PullAndBind(version, model_.get(), options_.reply_timeout_s * 1000));
      }
      outputs.resize(count * model_->num_outputs());
      const BatchStats s = model_->EvaluateBatch(x.data(), labels.data(), count, /*predicted=*/nullptr, outputs.data());
      metrics.AddBatch(labels.data(), outputs.data(), count);
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
  d->set_validation(phase.validation());
  d->set_loss_sum(total.loss_sum);
  d->set_examples(total.examples);
  d->set_correct(total.correct);
  d->set_part(phase.part());
  if (!metrics.problem().ok()) {
    LOG(WARNING) << "evaluation " << phase.epoch() + 1 << ": this worker's metrics are unusable ("
                 << metrics.problem().message() << "); the loss is still reported";
  }
  metrics.Fill(d);
  AddPeakMemory(d);
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
  const auto deadline = timeout_ms < 0 ? SteadyClock::time_point::max() : SteadyClock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    RETURN_IF_ERROR(CheckStop());
    if (SteadyClock::now() > deadline) {
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
        drops_.Drop("dropped a malformed message from the scheduler: " + m.status().ToString());
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
