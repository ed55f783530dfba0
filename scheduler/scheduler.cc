#include "scheduler/scheduler.h"

#include <algorithm>
#include <filesystem>
#include <random>

#include "core/checkpoint_manifest.h"
#include "core/consistency.h"
#include "core/file_util.h"
#include "core/json.h"
#include "scheduler/table_vocabulary.h"

namespace tessera {

using Stage = PhaseRunner::Stage;

Scheduler::Scheduler(Transport* transport, SchedulerOptions options, const std::atomic<bool>* stop,
                     std::unique_ptr<Socket> socket)
    : transport_(transport),
      options_(std::move(options)),
      stop_(stop),
      socket_(std::move(socket)),
      members_(options_.spec.cluster().servers(), options_.spec.cluster().workers()),
      phases_(options_.spec, &shape_, &results_),
      checkpoints_(options_.spec, options_.run_dir, &shape_, &phases_.losses()) {}

Scheduler::~Scheduler() = default;

StatusOr<JobShape> PlanSchedulerJob(const SchedulerOptions& options) {
  // A resumed job's vocabularies are those it started with, never rebuilt.
  std::optional<proto::TableVocabularies> stored;
  if (!options.resume_from.empty() && HasVocabularyColumns(options.spec.data())) {
    ASSIGN_OR_RETURN(stored, ReadTableVocabularies(RunDirOf(options.resume_from)));
  }
  return PlanJob(options.spec, stored ? &*stored : nullptr);
}

Status Scheduler::Prepare() {
  double planning_seconds = options_.planning_seconds;
  if (options_.shape.has_value()) {
    shape_ = *options_.shape;
  } else {
    const Clock::TimePoint planning = Now();
    ASSIGN_OR_RETURN(shape_, PlanSchedulerJob(options_));  // a table's every record read
    planning_seconds = std::chrono::duration<double>(Now() - planning).count();
  }
  if (!options_.run_dir.empty() && HasVocabularyColumns(options_.spec.data())) {
    RETURN_IF_ERROR(WriteTableVocabularies(options_.run_dir, *shape_.layout.table));
  }
  if (!options_.resume_from.empty()) {
    ASSIGN_OR_RETURN(resume_, LoadResumePoint(options_.resume_from, options_.spec, shape_));
    phases_.ResumeAt(resume_->step, resume_->evaluate_only ? options_.spec.epochs() - 1 : 0,
                     resume_->loss_before_cut);
    LOG(INFO) << "resuming from " << resume_->restore.dir() << ": step " << resume_->step << ", epoch "
              << resume_->start_epoch + 1;
    if (ResumedInOwnRunDir()) {
      // summary.json describes the whole job, the runs before this one included.
      const JobHistory history = ReadJobHistory(options_.run_dir + "/metrics.jsonl", resume_->start_epoch);
      results_.workers_lost = history.workers_lost;
      results_.workers_joined = history.workers_joined;
      results_.examples_by_epoch = history.examples_by_epoch;
      rollbacks_before_ = history.server_rollbacks;
      // The best epoch so far and early stopping go on where the earlier runs left them.
      validated_epochs_ = history.validated_epochs;
      if (history.best.has_value()) {
        phases_.RestoreBest(*history.best);
        if (history.best->epoch >= 0) checkpoints_.KeepStep(history.best->step);
      }
    }
  }
  LOG(INFO) << "job " << options_.spec.name() << ": " << shape_.tensors.size() << " tensors, " << shape_.num_keys
            << " parameters, " << shape_.train_examples << " training, " << shape_.validation_examples
            << " validation and " << shape_.test_examples
            << " test examples (planned in " << planning_seconds << " s)";
  LOG(INFO) << shape_.task.description;
  if (shape_.layout.table.has_value()) {
    const proto::TableData& table = *shape_.layout.table;
    if (table.train_bad_records() + table.validation_bad_records() + table.test_bad_records() > 0) {
      LOG(WARNING) << "passing over " << table.train_bad_records() << " bad training, " << table.validation_bad_records()
                   << " bad validation and " << table.test_bad_records()
                   << " bad test records (data.table.skip_bad_records)";
    }
  }
  return OkStatus();
}

Status Scheduler::Run() {
  start_time_ = Now();
  std::random_device rd;
  job_id_ = (static_cast<uint64_t>(rd()) << 32 | rd()) | 1;  // never 0, which means "unassigned"
  RETURN_IF_ERROR(Prepare());
  if (socket_ == nullptr) {
    ASSIGN_OR_RETURN(socket_, transport_->Bind(SocketKind::kRouter,
                                               "tcp://" + options_.host + ":" + std::to_string(options_.port)));
  }
  const std::string endpoint = socket_->endpoint();
  const std::string port = endpoint.substr(endpoint.rfind(':') + 1);
  LOG(INFO) << "scheduler listening on " << endpoint;
  RETURN_IF_ERROR(metrics_.Open(options_.run_dir));
  if (!options_.port_file.empty()) RETURN_IF_ERROR(WriteFileAtomic(options_.port_file, port + "\n"));

  // Done (or stopped) once no checkpoint is being taken any more.
  auto ended = [this] {
    return (phases_.stage() == Stage::kDone || phases_.stage() == Stage::kStopping) && !checkpoints_.busy();
  };
  // This process's own time outside the socket's wait, per loop iteration.
  auto iteration_start = std::chrono::steady_clock::now();
  std::chrono::steady_clock::duration waited{0};
  Status result;
  while (!ended()) {
    if (stop_->load() && phases_.stage() != Stage::kStopping && phases_.stage() != Stage::kDone) {
      // A final checkpoint first (when training can be cut), then shutdown.
      result = BeginStop();
      if (!result.ok()) break;
    }
    // An iteration that spent long outside the socket's wait (a slow fsync in
    // a manifest commit, say) left heartbeats waiting in the queue: that time
    // is not the nodes' silence. It is this process's own time, so the
    // system's clock measures it, whichever clock the deadlines follow.
    const auto now = std::chrono::steady_clock::now();
    const auto busy = now - iteration_start - waited;
    iteration_start = now;
    if (busy > std::chrono::seconds(1)) members_.Excuse(busy);
    result = CheckDeadlines();
    if (result.ok()) result = CheckHeartbeats();
    if (result.ok()) result = Apply(checkpoints_.Tick(Here(), Now()));
    if (!result.ok()) break;
    const auto wait_start = std::chrono::steady_clock::now();
    auto m = socket_->Receive(200);
    waited = std::chrono::steady_clock::now() - wait_start;
    if (!m.ok()) {
      if (m.status().code() != StatusCode::kDeadlineExceeded && m.status().code() != StatusCode::kAborted) {
        drops_.Drop("dropped a malformed message: " + m.status().ToString());
      }
      continue;
    }
    result = Handle(std::move(m).value());
    if (!result.ok()) break;
  }
  if (rolled_back()) return OkStatus();  // the nodes register again with the next run
  if (result.ok() && !checkpoints_.error().empty()) result = Status(checkpoints_.error_code(), checkpoints_.error());
  if (result.ok() && phases_.stage() == Stage::kStopping) {
    // Stopped cleanly: every node gets an ordinary SHUTDOWN, the scheduler reports the stop.
    ShutdownAll("");
    const std::string& note = checkpoints_.stop_note();
    return AbortedError("stopped by signal; " + (note.empty() ? std::string("no checkpoint taken") : note));
  }
  if (!result.ok()) {
    LOG(ERROR) << "job failed: " << result.ToString();
    ShutdownAll(result.message());
    return result;
  }
  ShutdownAll("");
  return WriteSummary();
}

Status Scheduler::CheckDeadlines() {
  const Stage stage = phases_.stage();
  if (stage == Stage::kStopping && Now() > stop_deadline_) {
    return AbortedError("stopped by signal; the final checkpoint did not finish within 60 s");
  }
  const auto timeout = std::chrono::seconds(options_.register_timeout_s);
  if (stage == Stage::kForming && Now() > start_time_ + timeout) {
    return DeadlineExceededError(
        std::to_string(members_.registered_servers()) + " of " + std::to_string(options_.spec.cluster().servers()) +
        " servers and " + std::to_string(members_.registered_workers()) + " of " +
        std::to_string(options_.spec.cluster().workers()) + " workers registered within " +
        std::to_string(options_.register_timeout_s) + " s");
  }
  const bool training = stage != Stage::kForming && stage != Stage::kStopping && stage != Stage::kDone;
  if (training && members_.LiveWorkers().empty() && Now() - no_workers_since_ > timeout) {
    return UnavailableError("every worker was lost and none joined within " +
                            std::to_string(options_.register_timeout_s) + " s");
  }
  return OkStatus();
}

Status Scheduler::Handle(Message m) {
  const proto::Header& h = m.header;
  if (h.op() == proto::REGISTER) return HandleRegister(m);
  if (h.op() == proto::HEARTBEAT) return HandleHeartbeat(m);
  if (h.op() == proto::NODE_EXITED) return HandleNodeExited(h.node_exited());
  Node* found = members_.Find(m.peer);
  if (found == nullptr || h.job_id() != job_id_) {
    drops_.Drop("dropped " + proto::Op_Name(h.op()) + " from an unregistered peer");
    return OkStatus();
  }
  Node& node = *found;
  switch (h.op()) {
    case proto::SERVER_READY:
      if (node.role != proto::SERVER) break;
      node.ready = true;
      return MaybeStartJob();
    case proto::LEASE_REQUEST: {
      if (node.role != proto::WORKER || phases_.stage() == Stage::kForming) break;
      proto::Header reply = Header(proto::LEASE);
      *reply.mutable_lease() = phases_.Lease(node.rank);
      return SendToWorker(node.peer, reply);
    }
    case proto::PROGRESS:
      if (node.role != proto::WORKER) break;
      return HandleProgress(node, h.progress());
    case proto::PHASE_DONE:
      if (node.role != proto::WORKER) break;
      results_.AddStaleness({h.staleness_steps().data(), static_cast<size_t>(h.staleness_steps_size())});
      return HandlePhaseDone(node, h.phase_done());
    case proto::CHECKPOINT_SNAPSHOT:
      if (node.role != proto::SERVER) break;
      return Apply(checkpoints_.Snapshot(node.rank, h.checkpoint_done(), Here(), Now()));
    case proto::CHECKPOINT_DONE:
      if (node.role != proto::SERVER) break;
      results_.AddSparseTableCounts(node.rank, h);
      return Apply(checkpoints_.PartWritten(node.rank, h.checkpoint_done(), Here(), Now()));
    case proto::MEMBERSHIP_ACK:
      if (node.role != proto::SERVER) break;
      return HandleMembershipAck(node, h.membership_ack());
    default:
      break;
  }
  drops_.Drop("dropped " + proto::Op_Name(h.op()) + " from " + proto::Role_Name(node.role) + " " +
              std::to_string(node.rank));
  return OkStatus();
}

Status Scheduler::MaybeStartJob() {
  if (phases_.stage() != Stage::kForming || !members_.Formed()) return OkStatus();
  RETURN_IF_ERROR(AbandonLaterCheckpoints());
  server_membership_.Start(members_.registered_workers());  // the servers start with every worker taking part
  // Heartbeats start with the cluster map: count silence from now.
  members_.StartHeartbeats(Now());
  const proto::ClusterSpec& c = options_.spec.cluster();
  LOG(INFO) << "all " << c.servers() << " servers and " << c.workers() << " workers are in; starting";
  for (const std::string& peer : std::vector<std::string>(members_.worker_peers())) {
    if (const Node* node = members_.Find(peer); node != nullptr) RETURN_IF_ERROR(SendMap(*node));
  }
  checkpoints_.Start(phases_.global_step(), Now());
  if (!resume_.has_value()) return Proceed(NextPhase::Training(0));
  const NextPhase first =
      FirstPhaseOfResume(*resume_, options_.spec, validated_epochs_, phases_.early_stopping().ShouldStop());
  if (first.kind == NextPhase::Kind::kEvaluation) {
    LOG(INFO) << "resuming at step " << phases_.global_step() << " with "
              << (first.validation ? "the validation of epoch " + std::to_string(first.epoch + 1)
                                   : std::string("the final evaluation only (training is done)"));
  }
  return Proceed(first);
}

bool Scheduler::ResumedInOwnRunDir() const {
  if (!resume_.has_value() || options_.run_dir.empty()) return false;
  std::error_code ec;
  return std::filesystem::absolute(options_.run_dir, ec).lexically_normal() ==
         std::filesystem::path(RunDirOf(resume_->restore.dir()));
}

Status Scheduler::AbandonLaterCheckpoints() {
  // Resumed from another run's checkpoint: this run has none past it.
  if (!ResumedInOwnRunDir()) return OkStatus();
  const std::string& dir = resume_->restore.dir();
  // Checkpoints past this one belong to the timeline being abandoned. Only
  // now: after a rollback, the servers of the last run finished their writes
  // (some into those directories) before they registered again.
  std::vector<std::string> removed;
  RETURN_IF_ERROR(RemoveCheckpointsAfter(RunDirOf(dir) + "/checkpoints", resume_->step, &removed));
  for (const std::string& name : removed) LOG(INFO) << "removed checkpoint " << name << ", past the resume point";
  return UpdateLatest(RunDirOf(dir) + "/checkpoints", CheckpointName(resume_->step));
}

Status Scheduler::Proceed(const NextPhase& next) {
  phases_.Proceed(next);
  return MaybeBegin();
}

void Scheduler::WantScheduleOffset() {
  const NextPhase& next = phases_.next();
  const int64_t steps_per_epoch = server_membership_.steps_per_epoch();
  if (phases_.stage() != Stage::kWaiting || next.kind != NextPhase::Kind::kTraining ||
      !IsSynchronous(options_.spec) || steps_per_epoch == 0) {
    return;
  }
  // Under BSP the schedule counts epochs in steps_per_epoch steps; an epoch
  // a lost worker's continuation made longer would leave it running early,
  // so each epoch re-anchors it at the step the epoch begins at.
  server_membership_.WantOffset(next.epoch * steps_per_epoch - (phases_.global_step() - next.skip_steps));
}

Status Scheduler::MaybeBegin() {
  if (phases_.stage() != Stage::kWaiting) return OkStatus();
  const std::vector<int> live = members_.LiveWorkers();
  if (live.empty()) return OkStatus();  // waits for a worker to join (or the no-worker deadline)
  std::vector<bool> active(members_.registered_workers(), false);
  for (int r : live) active[r] = true;
  // Workers that joined take part from now on: the servers must know before any of them pushes.
  WantScheduleOffset();
  if (server_membership_.Differs(active)) RETURN_IF_ERROR(SendMembership(active));
  if (!server_membership_.settled()) return OkStatus();  // until every server has acknowledged
  return Apply(phases_.Begin(live, Now()));
}

Status Scheduler::Apply(StatusOr<PhaseRunner::Actions> actions) {
  RETURN_IF_ERROR(actions.status());
  const PhaseRunner::Actions& a = *actions;
  for (const JsonObject& line : a.lines) metrics_.Record(line);
  if (a.new_best_step.has_value()) checkpoints_.KeepStep(*a.new_best_step);
  if (a.start.has_value()) {
    if (!a.start->test()) {
      if (a.start->part() == 0) progress_.EpochStarted(phases_.phase_start());
      progress_.PartStarted(phases_.global_step());
    }
    proto::Header h = Header(proto::START_PHASE);
    *h.mutable_phase() = *a.start;
    RETURN_IF_ERROR(SendToWorkers(h));
  }
  if (a.epoch_ended.has_value()) {
    const int epochs_done = phases_.epoch() + 1;
    if (checkpoints_.Due(epochs_done)) return Apply(checkpoints_.EpochEnded(epochs_done, Here(), *a.epoch_ended, Now()));
    return Proceed(*a.epoch_ended);
  }
  return MaybeBegin();
}

Status Scheduler::HandlePhaseDone(const Node& node, const proto::PhaseDone& done) {
  return Apply(phases_.PhaseDone(node.rank, done, static_cast<int>(members_.LiveWorkers().size()), Now()));
}

Status Scheduler::HandleProgress(const Node& node, const proto::Progress& p) {
  if (phases_.in_test() || p.epoch() != phases_.epoch() || p.examples() < 0) return OkStatus();
  // Its steps' losses first: a cut inside the epoch may be waiting for them (at a stop too).
  phases_.Progress(node.rank, p);
  RETURN_IF_ERROR(Apply(checkpoints_.WorkersReported(Here(), Now())));
  EpochProgress::Context context;
  context.epoch = phases_.epoch();
  context.epochs = options_.spec.epochs();
  context.train_examples = shape_.train_examples;
  context.trained_seconds = results_.train_seconds;
  context.epoch_start = phases_.phase_start();
  context.job_start = start_time_;
  const std::optional<JsonObject> line = progress_.Report(p, context, Now());
  if (phases_.stage() != Stage::kStopping) {
    RETURN_IF_ERROR(Apply(checkpoints_.Progressed(Here(), /*can_cut=*/!phases_.epoch_disturbed(), Now())));
  }
  if (line.has_value()) metrics_.Record(*line);
  return OkStatus();
}

Status Scheduler::BeginStop() {
  const bool can_cut = phases_.stage() != Stage::kForming && !phases_.in_test() && !phases_.epoch_disturbed();
  phases_.Stop();
  stop_deadline_ = Now() + std::chrono::seconds(60);
  return Apply(checkpoints_.Stop(Here(), can_cut, Now()));
}

CheckpointCoordinator::Position Scheduler::Here() const {
  CheckpointCoordinator::Position at;
  at.epoch = phases_.epoch();
  at.epoch_first_step = phases_.epoch_first_step();
  at.epoch_end_step = phases_.epoch_end_step();
  at.global_step = phases_.global_step();
  at.latest_step = progress_.latest_step();
  at.steps_per_second = progress_.steps_per_second();
  at.digest = results_.params_sha256;
  return at;
}

Status Scheduler::Apply(StatusOr<CheckpointCoordinator::Actions> actions) {
  RETURN_IF_ERROR(actions.status());
  const CheckpointCoordinator::Actions& a = *actions;
  if (a.release_workers) {
    proto::Header h;
    h.set_op(proto::SHUTDOWN);
    RETURN_IF_ERROR(SendToWorkers(h));
    members_.ReleaseWorkers();
  }
  // A committed checkpoint's line first: a failed request must not lose it.
  for (const JsonObject& line : a.lines) metrics_.Record(line);
  if (a.request.has_value()) {
    proto::Header h = Header(proto::CHECKPOINT);
    *h.mutable_checkpoint() = *a.request;
    RETURN_IF_ERROR(SendToServers(h));
  }
  return a.go_on.has_value() ? Proceed(*a.go_on) : OkStatus();
}

Status Scheduler::WriteSummary() {
  LOG(INFO) << "job done: test accuracy " << results_.test_accuracy << ", params_sha256 " << results_.params_sha256;
  if (options_.run_dir.empty()) return OkStatus();
  SummaryFacts facts;
  facts.steps = phases_.global_step();
  facts.wall_seconds = std::chrono::duration<double>(Now() - start_time_).count();
  facts.resumed_from_step = resume_.has_value() ? resume_->step : -1;
  facts.server_rollbacks = std::max(options_.rollbacks_done, rollbacks_before_);
  facts.best_checkpoint = BestCheckpoint();
  return WriteFileAtomic(options_.run_dir + "/summary.json", SummaryJson(options_.spec, shape_, results_, facts));
}

std::string Scheduler::BestCheckpoint() const {
  if (!results_.best.has_value() || results_.best->epoch < 0) return "";
  std::error_code ec;
  const std::string dir = (std::filesystem::absolute(options_.run_dir, ec).lexically_normal() / "checkpoints" /
                           CheckpointName(results_.best->step))
                              .string();
  // None when that epoch had no checkpoint cut (every_epochs > 1, checkpoints off) or it failed.
  return FileExists(dir + "/MANIFEST") ? dir : "";
}

}  // namespace tessera
