#include "scheduler/scheduler.h"

#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <random>

#include "core/checkpoint_manifest.h"
#include "core/dataset.h"
#include "core/file_util.h"
#include "core/idx_reader.h"
#include "core/json.h"
#include "core/spec.h"
#include "models/model.h"

namespace tessera {
namespace {

constexpr auto kMetricsInterval = std::chrono::milliseconds(500);
constexpr int kNumClasses = kImageDatasetClasses;

double Seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

Scheduler::Scheduler(Transport* transport, SchedulerOptions options, const std::atomic<bool>* stop)
    : transport_(transport), options_(std::move(options)), stop_(stop) {}

Scheduler::~Scheduler() {
  if (metrics_ != nullptr) fclose(metrics_);
}

Status Scheduler::Prepare() {
  RETURN_IF_ERROR(ValidateJobSpec(options_.spec));
  const proto::DataSpec& data = options_.spec.data();
  ASSIGN_OR_RETURN(int64_t train, CountExamples(DataPath(data, data.train_images()), DataPath(data, data.train_labels())));
  ASSIGN_OR_RETURN(int64_t test, CountExamples(DataPath(data, data.test_images()), DataPath(data, data.test_labels())));
  train_examples_ = data.max_train_examples() > 0 ? std::min(train, data.max_train_examples()) : train;
  test_examples_ = data.max_test_examples() > 0 ? std::min(test, data.max_test_examples()) : test;
  ASSIGN_OR_RETURN(std::vector<uint32_t> dims, ReadIdxDims(DataPath(data, data.train_images())));
  int64_t features = 1;
  for (size_t i = 1; i < dims.size(); ++i) features *= dims[i];
  ASSIGN_OR_RETURN(auto model, Model::Create(options_.spec.model(), features, kNumClasses));
  for (const TensorInfo& t : model->tensors()) {
    proto::TensorMeta meta;
    meta.set_name(t.name);
    for (int64_t d : t.shape) meta.add_shape(d);
    meta.set_offset(t.offset);
    meta.set_size(t.size);
    meta.set_init_bound(t.init_bound);
    tensors_.push_back(meta);
  }
  num_keys_ = model->num_keys();
  server_ranges_ = PlanServerSlices(model->tensors(), options_.spec.cluster().servers());
  RETURN_IF_ERROR(CheckFrameSizes(server_ranges_));
  if (train_examples_ < 1 || test_examples_ < 1) {
    return InvalidArgumentError("the job needs training and test examples, got " + std::to_string(train_examples_) +
                                " and " + std::to_string(test_examples_));
  }
  if (!options_.resume_from.empty()) RETURN_IF_ERROR(LoadResumePoint());
  LOG(INFO) << "job " << options_.spec.name() << ": " << model->tensors().size() << " tensors, " << num_keys_
            << " parameters, " << train_examples_ << " training and " << test_examples_ << " test examples";
  return OkStatus();
}

Status Scheduler::Run() {
  start_time_ = Clock::now();
  std::random_device rd;
  job_id_ = (static_cast<uint64_t>(rd()) << 32 | rd()) | 1;  // never 0, which means "unassigned"
  RETURN_IF_ERROR(Prepare());
  ASSIGN_OR_RETURN(socket_, transport_->Bind(SocketKind::kRouter,
                                             "tcp://" + options_.host + ":" + std::to_string(options_.port)));
  const std::string endpoint = socket_->endpoint();
  const std::string port = endpoint.substr(endpoint.rfind(':') + 1);
  LOG(INFO) << "scheduler listening on " << endpoint;
  if (!options_.run_dir.empty()) {
    metrics_ = fopen((options_.run_dir + "/metrics.jsonl").c_str(), "a");
    if (metrics_ == nullptr) return UnavailableError("cannot open " + options_.run_dir + "/metrics.jsonl");
  }
  if (!options_.port_file.empty()) RETURN_IF_ERROR(WriteFileAtomic(options_.port_file, port + "\n"));

  const auto register_deadline = start_time_ + std::chrono::seconds(options_.register_timeout_s);
  Status result;
  while (!(finished_ && !checkpoint_.has_value())) {
    if (stop_->load()) {
      result = AbortedError("stopped by signal");
      break;
    }
    if (!started_ && Clock::now() > register_deadline) {
      result = DeadlineExceededError(
          std::to_string(server_peers_.size()) + " of " + std::to_string(options_.spec.cluster().servers()) +
          " servers and " + std::to_string(worker_peers_.size()) + " of " +
          std::to_string(options_.spec.cluster().workers()) + " workers registered within " +
          std::to_string(options_.register_timeout_s) + " s");
      break;
    }
    auto m = socket_->Receive(200);
    if (!m.ok()) {
      if (m.status().code() != StatusCode::kDeadlineExceeded) {
        LOG(WARNING) << "dropped a malformed message: " << m.status().ToString();
      }
      continue;
    }
    result = Handle(std::move(m).value());
    if (!result.ok()) break;
  }
  if (result.ok() && !checkpoint_error_.empty()) result = UnavailableError(checkpoint_error_);
  if (!result.ok()) {
    LOG(ERROR) << "job failed: " << result.ToString();
    ShutdownAll(result.message());
    return result;
  }
  ShutdownAll("");
  return WriteSummary();
}

Status Scheduler::Handle(Message m) {
  const proto::Header& h = m.header;
  if (h.op() == proto::REGISTER) return HandleRegister(m);
  auto it = nodes_.find(m.peer);
  if (it == nodes_.end() || h.job_id() != job_id_) {
    LOG(WARNING) << "dropped " << proto::Op_Name(h.op()) << " from an unregistered peer";
    return OkStatus();
  }
  Node& node = it->second;
  switch (h.op()) {
    case proto::SERVER_READY:
      if (node.role != proto::SERVER) break;
      node.ready = true;
      return MaybeStartJob();
    case proto::LEASE_REQUEST: {
      if (node.role != proto::WORKER || !started_) break;
      proto::Header reply;
      reply.set_op(proto::LEASE);
      reply.set_job_id(job_id_);
      reply.set_sender_role(proto::SCHEDULER);
      *reply.mutable_lease() = leases_.Next(node.rank);
      return socket_->Send(reply, {}, node.peer);
    }
    case proto::PROGRESS:
      if (node.role != proto::WORKER) break;
      HandleProgress(h.progress());
      return OkStatus();
    case proto::PHASE_DONE:
      if (node.role != proto::WORKER) break;
      return HandlePhaseDone(node, h.phase_done());
    case proto::CHECKPOINT_SNAPSHOT:
      if (node.role != proto::SERVER) break;
      return HandleCheckpointSnapshot(node, h.checkpoint_done());
    case proto::CHECKPOINT_DONE:
      if (node.role != proto::SERVER) break;
      return HandleCheckpointDone(node, h.checkpoint_done());
    default:
      break;
  }
  LOG(WARNING) << "dropped " << proto::Op_Name(h.op()) << " from " << proto::Role_Name(node.role) << " "
               << node.rank;
  return OkStatus();
}

Status Scheduler::HandleRegister(const Message& m) {
  const proto::Register& r = m.header.register_();
  if (nodes_.count(m.peer) > 0) {
    LOG(WARNING) << "dropped a second REGISTER from one peer";
    return OkStatus();
  }
  Node node;
  node.peer = m.peer;
  node.role = r.role();
  const proto::ClusterSpec& c = options_.spec.cluster();
  std::string refusal;
  if (r.role() == proto::SERVER) {
    if (static_cast<int>(server_peers_.size()) >= c.servers()) refusal = "the job has all its servers";
    if (r.address().empty()) refusal = "a server must give its address";
  } else if (r.role() == proto::WORKER) {
    if (static_cast<int>(worker_peers_.size()) >= c.workers()) refusal = "the job has all its workers";
  } else {
    LOG(WARNING) << "dropped a REGISTER with role " << r.role();
    return OkStatus();
  }
  if (!refusal.empty()) {
    LOG(WARNING) << "refused a " << proto::Role_Name(r.role()) << ": " << refusal;
    proto::Header h;
    h.set_op(proto::SHUTDOWN);
    h.mutable_shutdown()->set_reason(refusal);
    socket_->Send(h, {}, m.peer).IgnoreError();  // it may already be gone
    return OkStatus();
  }
  if (r.role() == proto::SERVER) {
    node.rank = static_cast<int>(server_peers_.size());
    node.address = r.address();
    server_peers_.push_back(m.peer);
  } else {
    node.rank = static_cast<int>(worker_peers_.size());
    worker_peers_.push_back(m.peer);
  }
  LOG(INFO) << proto::Role_Name(r.role()) << " " << node.rank << " registered (pid " << r.pid() << ")"
            << (node.address.empty() ? "" : " at " + node.address);
  nodes_[m.peer] = node;
  if (r.role() == proto::SERVER && static_cast<int>(server_peers_.size()) == c.servers()) {
    // Every server known: each can be told its ranges.
    for (const std::string& peer : server_peers_) RETURN_IF_ERROR(SendMap(nodes_[peer]));
  }
  return MaybeStartJob();
}

Status Scheduler::SendMap(const Node& node) {
  proto::Header h;
  h.set_op(proto::CLUSTER_MAP);
  h.set_job_id(job_id_);
  h.set_sender_role(proto::SCHEDULER);
  proto::ClusterMap* map = h.mutable_cluster_map();
  map->set_rank(node.rank);
  *map->mutable_spec() = options_.spec;
  map->set_num_workers(options_.spec.cluster().workers());
  map->set_num_keys(num_keys_);
  map->set_train_examples(train_examples_);
  map->set_test_examples(test_examples_);
  if (node.role == proto::SERVER && restore_.has_value()) *map->mutable_restore() = *restore_;
  for (const proto::TensorMeta& t : tensors_) *map->add_tensors() = t;
  for (size_t s = 0; s < server_peers_.size(); ++s) {
    proto::ServerInfo* info = map->add_servers();
    info->set_rank(static_cast<int>(s));
    info->set_address(nodes_[server_peers_[s]].address);
    for (const KeyRange& r : server_ranges_[s]) {
      proto::KeyRange* out = info->add_ranges();
      out->set_begin(r.begin);
      out->set_end(r.end);
    }
  }
  return socket_->Send(h, {}, node.peer);
}

Status Scheduler::MaybeStartJob() {
  const proto::ClusterSpec& c = options_.spec.cluster();
  if (started_ || static_cast<int>(server_peers_.size()) < c.servers() ||
      static_cast<int>(worker_peers_.size()) < c.workers()) {
    return OkStatus();
  }
  for (const std::string& peer : server_peers_) {
    if (!nodes_[peer].ready) return OkStatus();
  }
  started_ = true;
  LOG(INFO) << "all " << c.servers() << " servers and " << c.workers() << " workers are in; starting";
  for (const std::string& peer : worker_peers_) RETURN_IF_ERROR(SendMap(nodes_[peer]));
  return StartTraining(start_epoch_);
}

Status Scheduler::LoadResumePoint() {
  const std::string& dir = options_.resume_from;
  ASSIGN_OR_RETURN(proto::CheckpointManifest m, ReadManifest(dir));
  RETURN_IF_ERROR(VerifyCheckpoint(dir, m));
  // The model must be the one the checkpoint holds.
  if (m.num_keys() != num_keys_ || m.tensors_size() != static_cast<int>(tensors_.size())) {
    return InvalidArgumentError("checkpoint " + dir + " holds a model of " + std::to_string(m.tensors_size()) +
                                " tensors and " + std::to_string(m.num_keys()) + " parameters; the spec's has " +
                                std::to_string(tensors_.size()) + " and " + std::to_string(num_keys_));
  }
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const proto::TensorMeta& a = m.tensors(static_cast<int>(i));
    const proto::TensorMeta& b = tensors_[i];
    if (a.name() != b.name() || a.offset() != b.offset() || a.size() != b.size() ||
        !std::equal(a.shape().begin(), a.shape().end(), b.shape().begin(), b.shape().end())) {
      return InvalidArgumentError("checkpoint " + dir + " holds tensor " + a.name() + " of another shape than the spec's " +
                                  b.name());
    }
  }
  if (m.spec().optimizer().type() != options_.spec.optimizer().type()) {
    return InvalidArgumentError("checkpoint " + dir + " holds " + m.optimizer() + " state; the spec asks for " +
                                proto::OptimizerSpec::Type_Name(options_.spec.optimizer().type()));
  }
  if (m.cursor().steps_into_epoch() != 0) {
    return InvalidArgumentError("checkpoint " + dir + " was cut inside an epoch; this version resumes at epoch ends");
  }
  start_epoch_ = m.cursor().epoch();
  if (start_epoch_ >= options_.spec.epochs()) {
    return InvalidArgumentError("checkpoint " + dir + " is after epoch " + std::to_string(start_epoch_) +
                                " of " + std::to_string(options_.spec.epochs()) + ": resume with --epochs > " +
                                std::to_string(start_epoch_));
  }
  global_step_ = m.step();
  resumed_from_step_ = m.step();
  proto::Restore restore;
  restore.set_dir(dir);
  restore.set_step(m.step());
  restore.set_state_per_param(m.state_per_param());
  for (const proto::ServerPart& part : m.servers()) {
    proto::RestorePart* out = restore.add_parts();
    out->set_dir(part.dir());
    *out->mutable_ranges() = part.ranges();
  }
  restore_ = std::move(restore);
  LOG(INFO) << "resuming from " << dir << ": step " << m.step() << ", epoch " << start_epoch_ + 1;
  return OkStatus();
}

bool Scheduler::CheckpointDue(int epochs_done) const {
  const proto::CheckpointSpec& k = options_.spec.checkpoint();
  if (!k.enabled() || options_.run_dir.empty()) return false;
  if (epochs_done == options_.spec.epochs()) return true;
  return k.every_epochs() > 0 && epochs_done % k.every_epochs() == 0;
}

Status Scheduler::StartCheckpoint(int epochs_done, std::function<Status()> then) {
  if (checkpoint_.has_value()) {
    // The previous one is still being written: skip this one rather than stall.
    LOG(WARNING) << "skipping the checkpoint after epoch " << epochs_done << ": the one at step "
                 << checkpoint_->step << " is still being written";
    return then();
  }
  PendingCheckpoint p;
  p.step = global_step_;
  p.epochs_done = epochs_done;
  p.name = CheckpointName(global_step_);
  std::error_code ec;
  const std::string run_dir = std::filesystem::absolute(options_.run_dir, ec).string();
  p.dir = run_dir + "/checkpoints/" + p.name;
  p.params_sha256 = options_.spec.consistency() == proto::BSP ? params_sha256_ : "";
  p.then = std::move(then);
  p.parts.assign(server_peers_.size(), std::nullopt);
  p.start = Clock::now();
  if (FileExists(p.dir)) {
    // Left by an attempt that never committed (no MANIFEST): start it afresh.
    std::filesystem::remove_all(p.dir, ec);
  }
  RETURN_IF_ERROR(MakeDirs(p.dir));
  proto::Header h;
  h.set_op(proto::CHECKPOINT);
  h.set_job_id(job_id_);
  h.set_sender_role(proto::SCHEDULER);
  h.mutable_checkpoint()->set_dir(p.dir);
  h.mutable_checkpoint()->set_step(p.step);
  checkpoint_ = std::move(p);
  for (const std::string& peer : server_peers_) RETURN_IF_ERROR(socket_->Send(h, {}, peer));
  return OkStatus();
}

Status Scheduler::HandleCheckpointSnapshot(const Node& node, const proto::CheckpointDone& ack) {
  if (!checkpoint_.has_value() || ack.step() != checkpoint_->step || !checkpoint_->then) return OkStatus();
  if (!ack.error().empty()) {
    checkpoint_->error = "server " + std::to_string(node.rank) + ": " + ack.error();
    // A refused snapshot writes nothing; count its part as done.
    checkpoint_->parts[node.rank] = ack;
    ++checkpoint_->parts_done;
  }
  if (++checkpoint_->snapshots < static_cast<int>(server_peers_.size())) return OkStatus();
  std::function<Status()> then = std::move(checkpoint_->then);
  checkpoint_->then = nullptr;
  if (checkpoint_->parts_done == static_cast<int>(server_peers_.size())) RETURN_IF_ERROR(CommitCheckpoint());
  return then();
}

Status Scheduler::HandleCheckpointDone(const Node& node, const proto::CheckpointDone& done) {
  if (!checkpoint_.has_value() || done.step() != checkpoint_->step || checkpoint_->parts[node.rank].has_value()) {
    LOG(WARNING) << "dropped a CHECKPOINT_DONE for step " << done.step() << " from server " << node.rank;
    return OkStatus();
  }
  if (!done.error().empty()) checkpoint_->error = "server " + std::to_string(node.rank) + ": " + done.error();
  checkpoint_->parts[node.rank] = done;
  if (++checkpoint_->parts_done < static_cast<int>(server_peers_.size()) || checkpoint_->then) return OkStatus();
  return CommitCheckpoint();
}

Status Scheduler::CommitCheckpoint() {
  PendingCheckpoint p = std::move(*checkpoint_);
  checkpoint_.reset();
  const bool final = p.epochs_done == options_.spec.epochs();
  if (!p.error.empty()) {
    // The checkpoint never gets a manifest, so it does not exist; the previous one stays.
    LOG(ERROR) << "checkpoint at step " << p.step << " failed: " << p.error;
    if (final) checkpoint_error_ = "the final checkpoint failed: " + p.error;
    return OkStatus();
  }
  proto::CheckpointManifest m;
  *m.mutable_spec() = options_.spec;
  m.set_step(p.step);
  m.mutable_cursor()->set_seed(options_.spec.seed());
  m.mutable_cursor()->set_epoch(p.epochs_done);
  m.mutable_cursor()->set_steps_into_epoch(0);
  for (const proto::TensorMeta& t : tensors_) *m.add_tensors() = t;
  m.set_num_keys(num_keys_);
  int64_t bytes = 0;
  double slowest = 0;
  for (size_t s = 0; s < p.parts.size(); ++s) {
    const proto::CheckpointDone& done = *p.parts[s];
    proto::ServerPart* part = m.add_servers();
    part->set_rank(static_cast<int>(s));
    part->set_dir(done.dir());
    for (const KeyRange& r : server_ranges_[s]) {
      proto::KeyRange* out = part->add_ranges();
      out->set_begin(r.begin);
      out->set_end(r.end);
    }
    *part->mutable_files() = done.files();
    m.set_state_per_param(done.state_per_param());
    bytes += done.bytes();
    slowest = std::max(slowest, done.write_seconds());
  }
  m.set_params_sha256(p.params_sha256);
  m.set_optimizer(proto::OptimizerSpec::Type_Name(options_.spec.optimizer().type()));
  m.set_created_unix_seconds(static_cast<int64_t>(std::time(nullptr)));
  m.set_examples_per_epoch(train_examples_);
  Status written = WriteManifest(p.dir, m);
  if (!written.ok()) {
    LOG(ERROR) << "checkpoint at step " << p.step << " failed: " << written.ToString();
    if (final) checkpoint_error_ = "the final checkpoint failed: " + written.message();
    return OkStatus();
  }
  const std::string checkpoints = p.dir.substr(0, p.dir.rfind('/'));
  RETURN_IF_ERROR(UpdateLatest(checkpoints, p.name));
  Status pruned = PruneCheckpoints(checkpoints, options_.spec.checkpoint().keep_last());
  if (!pruned.ok()) LOG(WARNING) << "could not delete old checkpoints: " << pruned.ToString();
  const double seconds = Seconds(Clock::now() - p.start);
  JsonObject line;
  line.Add("event", "checkpoint")
      .Add("step", p.step)
      .Add("epoch", p.epochs_done)
      .Add("dir", p.dir)
      .Add("bytes", bytes)
      .Add("seconds", seconds)
      .Add("server_write_seconds", slowest);
  RecordMetrics(line.ToString());
  LOG(INFO) << "checkpoint " << p.name << " committed: " << bytes << " bytes in " << seconds << " s";
  return OkStatus();
}

Status Scheduler::StartTraining(int epoch) {
  const proto::JobSpec& spec = options_.spec;
  const int workers = spec.cluster().workers();
  const bool bsp = spec.consistency() == proto::BSP;
  leases_.StartTraining(epoch, train_examples_, spec.data().shards_per_worker() * workers, workers, bsp);
  epoch_ = epoch;
  in_test_ = false;
  phase_done_count_ = 0;
  phase_reports_.assign(workers, std::nullopt);
  phase_loss_ = phase_correct_ = 0;
  phase_examples_ = phase_worker_steps_ = 0;
  phase_steps_ = bsp ? leases_.StepsPerWorker(spec.batch_size()) : 0;
  phase_start_ = window_start_ = Clock::now();
  epoch_examples_seen_ = 0;
  proto::Header h;
  h.set_op(proto::START_PHASE);
  h.mutable_phase()->set_epoch(epoch);
  h.mutable_phase()->set_steps(phase_steps_);
  h.mutable_phase()->set_first_step(global_step_);
  LOG(INFO) << "epoch " << epoch + 1 << "/" << spec.epochs() << " starts at step " << global_step_;
  return SendToWorkers(h);
}

Status Scheduler::StartEvaluation(int epoch) {
  const proto::JobSpec& spec = options_.spec;
  const int workers = spec.cluster().workers();
  // Under BSP each worker evaluates fixed shards, so the summed test loss is reproducible.
  leases_.StartTest(epoch, test_examples_, std::max(1, workers * spec.data().shards_per_worker()), workers,
                    spec.consistency() == proto::BSP);
  in_test_ = true;
  phase_done_count_ = 0;
  phase_reports_.assign(workers, std::nullopt);
  phase_loss_ = phase_correct_ = 0;
  phase_examples_ = 0;
  proto::Header h;
  h.set_op(proto::START_PHASE);
  h.mutable_phase()->set_epoch(epoch);
  h.mutable_phase()->set_test(true);
  h.mutable_phase()->set_final(epoch + 1 == spec.epochs());
  return SendToWorkers(h);
}

void Scheduler::HandleProgress(const proto::Progress& p) {
  if (in_test_ || p.epoch() != epoch_ || p.examples() < 0) return;
  window_examples_ += p.examples();
  window_loss_ += p.loss_sum();
  epoch_examples_seen_ += p.examples();
  latest_step_ = std::max(latest_step_, p.step());
  const auto now = Clock::now();
  if (now - window_start_ < kMetricsInterval) return;
  const double window = Seconds(now - window_start_);
  const int epochs = options_.spec.epochs();
  const double done = (static_cast<double>(epoch_) + static_cast<double>(epoch_examples_seen_) / train_examples_) / epochs;
  const double elapsed_training = train_seconds_ + Seconds(now - phase_start_);
  JsonObject line;
  line.Add("event", "progress")
      .Add("epoch", epoch_ + 1)
      .Add("epochs", epochs)
      .Add("step", latest_step_)
      .Add("loss", window_examples_ > 0 ? window_loss_ / window_examples_ : 0.0)
      .Add("samples_per_sec", window_examples_ / window)
      .Add("fraction", done)
      .Add("eta_seconds", done > 0 ? elapsed_training * (1 - done) / done : 0.0)
      .Add("elapsed_seconds", Seconds(now - start_time_));
  RecordMetrics(line.ToString());
  window_examples_ = 0;
  window_loss_ = 0;
  window_start_ = now;
}

Status Scheduler::HandlePhaseDone(const Node& node, const proto::PhaseDone& done) {
  if (done.epoch() != epoch_ || done.test() != in_test_) {
    LOG(WARNING) << "dropped a PHASE_DONE for another phase from worker " << node.rank;
    return OkStatus();
  }
  if (phase_reports_[node.rank].has_value()) {
    LOG(WARNING) << "dropped a second PHASE_DONE from worker " << node.rank;
    return OkStatus();
  }
  phase_reports_[node.rank] = done;
  if (++phase_done_count_ < options_.spec.cluster().workers()) return OkStatus();
  // Everyone is in: add the reports up in rank order, so the figures are the same in every run.
  for (const std::optional<proto::PhaseDone>& report : phase_reports_) {
    phase_loss_ += report->loss_sum();
    phase_correct_ += report->correct();
    phase_examples_ += report->examples();
    phase_worker_steps_ += report->steps();
    compute_seconds_ += report->compute_seconds();
    communication_seconds_ += report->communication_seconds();
  }
  if (!phase_reports_[0]->params_sha256().empty()) params_sha256_ = phase_reports_[0]->params_sha256();

  const proto::JobSpec& spec = options_.spec;
  const bool last_epoch = epoch_ + 1 == spec.epochs();
  if (!in_test_) {
    const double seconds = Seconds(Clock::now() - phase_start_);
    train_seconds_ += seconds;
    trained_examples_ += phase_examples_;
    global_step_ += spec.consistency() == proto::BSP ? phase_steps_ : phase_worker_steps_;
    last_train_loss_ = phase_examples_ > 0 ? phase_loss_ / phase_examples_ : 0;
    if (phase_examples_ != train_examples_) {
      return InternalError("epoch " + std::to_string(epoch_ + 1) + " trained on " + std::to_string(phase_examples_) +
                           " examples, expected " + std::to_string(train_examples_));
    }
    JsonObject line;
    line.Add("event", "epoch")
        .Add("epoch", epoch_ + 1)
        .Add("epochs", spec.epochs())
        .Add("step", global_step_)
        .Add("train_loss", last_train_loss_)
        .Add("examples", phase_examples_)
        .Add("samples_per_sec", phase_examples_ / seconds)
        .Add("epoch_seconds", seconds);
    RecordMetrics(line.ToString());
    LOG(INFO) << "epoch " << epoch_ + 1 << " done: train loss " << last_train_loss_ << ", "
              << phase_examples_ / seconds << " samples/s";
    const int epoch = epoch_;
    auto next = [this, epoch, last_epoch]() -> Status {
      if (options_.spec.eval_every_epoch() || last_epoch) return StartEvaluation(epoch);
      return StartTraining(epoch + 1);
    };
    if (CheckpointDue(epoch_ + 1)) return StartCheckpoint(epoch_ + 1, next);
    return next();
  }
  test_accuracy_ = phase_examples_ > 0 ? phase_correct_ / phase_examples_ : 0;
  test_loss_ = phase_examples_ > 0 ? phase_loss_ / phase_examples_ : 0;
  JsonObject line;
  line.Add("event", "eval")
      .Add("epoch", epoch_ + 1)
      .Add("epochs", spec.epochs())
      .Add("test_accuracy", test_accuracy_)
      .Add("test_loss", test_loss_)
      .Add("examples", phase_examples_);
  RecordMetrics(line.ToString());
  LOG(INFO) << "epoch " << epoch_ + 1 << " test accuracy " << test_accuracy_ << " (" << phase_examples_ << " examples)";
  if (phase_examples_ != test_examples_) {
    return InternalError("evaluation saw " + std::to_string(phase_examples_) + " examples, expected " +
                         std::to_string(test_examples_));
  }
  if (last_epoch) {
    finished_ = true;  // done once the final checkpoint, if any, has committed
    return OkStatus();
  }
  return StartTraining(epoch_ + 1);
}

Status Scheduler::SendToWorkers(const proto::Header& h) {
  proto::Header out = h;
  out.set_job_id(job_id_);
  out.set_sender_role(proto::SCHEDULER);
  for (const std::string& peer : worker_peers_) RETURN_IF_ERROR(socket_->Send(out, {}, peer));
  return OkStatus();
}

void Scheduler::ShutdownAll(const std::string& reason) {
  if (socket_ == nullptr) return;
  proto::Header h;
  h.set_op(proto::SHUTDOWN);
  h.set_job_id(job_id_);
  h.set_sender_role(proto::SCHEDULER);
  if (!reason.empty()) h.mutable_shutdown()->set_reason(reason);
  for (const auto& [peer, node] : nodes_) socket_->Send(h, {}, peer).IgnoreError();  // gone nodes need no word
}

void Scheduler::RecordMetrics(const std::string& line) {
  if (metrics_ == nullptr) return;
  fputs((line + "\n").c_str(), metrics_);
  fflush(metrics_);
}

Status Scheduler::WriteSummary() {
  const proto::JobSpec& spec = options_.spec;
  JsonObject s;
  s.Add("name", spec.name())
      .Add("test_accuracy", test_accuracy_)
      .Add("test_loss", test_loss_)
      .Add("train_loss", last_train_loss_)
      .Add("steps", global_step_)
      .Add("epochs", spec.epochs())
      .Add("examples_per_epoch", train_examples_)
      .Add("samples_per_sec", train_seconds_ > 0 ? trained_examples_ / train_seconds_ : 0.0)
      .Add("train_seconds", train_seconds_)
      .Add("wall_seconds", Seconds(Clock::now() - start_time_))
      .Add("worker_compute_seconds", compute_seconds_ / spec.cluster().workers())
      .Add("worker_communication_seconds", communication_seconds_ / spec.cluster().workers())
      .Add("servers", spec.cluster().servers())
      .Add("workers", spec.cluster().workers())
      .Add("consistency", proto::Consistency_Name(spec.consistency()))
      .Add("num_parameters", static_cast<int64_t>(num_keys_))
      .Add("params_sha256", params_sha256_)
      .Add("resumed_from_step", resumed_from_step_);
  LOG(INFO) << "job done: test accuracy " << test_accuracy_ << ", params_sha256 " << params_sha256_;
  if (options_.run_dir.empty()) return OkStatus();
  return WriteFileAtomic(options_.run_dir + "/summary.json", s.ToPrettyString());
}

}  // namespace tessera
