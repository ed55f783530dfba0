#include "scheduler/scheduler.h"

#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <random>

#include "core/checkpoint_manifest.h"
#include "core/file_util.h"
#include "core/json.h"
#include "core/spec.h"
#include "scheduler/resume_point.h"

namespace tessera {
namespace {


double Seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

Scheduler::Scheduler(Transport* transport, SchedulerOptions options, const std::atomic<bool>* stop,
                     std::unique_ptr<Socket> socket)
    : transport_(transport),
      options_(std::move(options)),
      stop_(stop),
      socket_(std::move(socket)),
      members_(options_.spec.cluster().servers(), options_.spec.cluster().workers()),
      checkpoints_(options_.spec, options_.run_dir, &shape_) {}

Scheduler::~Scheduler() = default;

Status Scheduler::Prepare() {
  ASSIGN_OR_RETURN(shape_, PlanJob(options_.spec));
  if (!options_.resume_from.empty()) {
    ASSIGN_OR_RETURN(ResumePoint point, LoadResumePoint(options_.resume_from, options_.spec, shape_));
    start_epoch_ = point.start_epoch;
    start_skip_steps_ = point.skip_steps;
    evaluate_only_ = point.evaluate_only;
    global_step_ = resumed_from_step_ = point.step;
    restore_ = std::move(point.restore);
    LOG(INFO) << "resuming from " << restore_->dir() << ": step " << point.step << ", epoch " << start_epoch_ + 1;
  }
  LOG(INFO) << "job " << options_.spec.name() << ": " << shape_.tensors.size() << " tensors, " << shape_.num_keys
            << " parameters, " << shape_.train_examples << " training and " << shape_.test_examples
            << " test examples";
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

  const auto register_deadline = start_time_ + std::chrono::seconds(options_.register_timeout_s);
  // This process's own time outside the socket's wait, per loop iteration.
  auto iteration_start = std::chrono::steady_clock::now();
  std::chrono::steady_clock::duration waited{0};
  Status result;
  while (!(finished_ && !checkpoints_.busy())) {
    if (stop_->load() && !stopping_ && !finished_) {
      // A final checkpoint first (when training can be cut), then shutdown.
      result = BeginStop();
      if (!result.ok()) break;
    }
    if (stopping_ && Now() > stop_deadline_) {
      result = AbortedError("stopped by signal; the final checkpoint did not finish within 60 s");
      break;
    }
    if (stopping_ && !checkpoints_.busy()) finished_ = true;
    // An iteration that spent long outside the socket's wait (a slow fsync in
    // a manifest commit, say) left heartbeats waiting in the queue: that time
    // is not the nodes' silence. It is this process's own time, so the
    // system's clock measures it, whichever clock the deadlines follow.
    const auto now = std::chrono::steady_clock::now();
    const auto busy = now - iteration_start - waited;
    iteration_start = now;
    if (busy > std::chrono::seconds(1)) members_.Excuse(busy);
    result = CheckHeartbeats();
    if (result.ok()) result = Apply(checkpoints_.Tick(Here(), Now()));
    if (!result.ok()) break;
    if (started_ && !finished_ && !stopping_ && members_.LiveWorkers().empty() &&
        Now() - no_workers_since_ > std::chrono::seconds(options_.register_timeout_s)) {
      result = UnavailableError("every worker was lost and none joined within " +
                                std::to_string(options_.register_timeout_s) + " s");
      break;
    }
    if (!started_ && Now() > register_deadline) {
      result = DeadlineExceededError(
          std::to_string(members_.registered_servers()) + " of " + std::to_string(options_.spec.cluster().servers()) +
          " servers and " + std::to_string(members_.registered_workers()) + " of " +
          std::to_string(options_.spec.cluster().workers()) + " workers registered within " +
          std::to_string(options_.register_timeout_s) + " s");
      break;
    }
    const auto wait_start = std::chrono::steady_clock::now();
    auto m = socket_->Receive(200);
    waited = std::chrono::steady_clock::now() - wait_start;
    if (!m.ok()) {
      if (m.status().code() != StatusCode::kDeadlineExceeded && m.status().code() != StatusCode::kAborted) {
        LOG(WARNING) << "dropped a malformed message: " << m.status().ToString();
      }
      continue;
    }
    result = Handle(std::move(m).value());
    if (!result.ok()) break;
  }
  if (rolled_back()) return OkStatus();  // the nodes register again with the next run
  if (result.ok() && !checkpoints_.error().empty()) result = UnavailableError(checkpoints_.error());
  if (result.ok() && stopping_) {
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

Status Scheduler::Handle(Message m) {
  const proto::Header& h = m.header;
  if (h.op() == proto::REGISTER) return HandleRegister(m);
  if (h.op() == proto::HEARTBEAT) return HandleHeartbeat(m);
  if (h.op() == proto::NODE_EXITED) return HandleNodeExited(h.node_exited());
  Node* found = members_.Find(m.peer);
  if (found == nullptr || h.job_id() != job_id_) {
    LOG(WARNING) << "dropped " << proto::Op_Name(h.op()) << " from an unregistered peer";
    return OkStatus();
  }
  Node& node = *found;
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
      return SendToWorker(node.peer, reply);
    }
    case proto::PROGRESS:
      if (node.role != proto::WORKER) break;
      return HandleProgress(h.progress());
    case proto::PHASE_DONE:
      if (node.role != proto::WORKER) break;
      return HandlePhaseDone(node, h.phase_done());
    case proto::CHECKPOINT_SNAPSHOT:
      if (node.role != proto::SERVER) break;
      return Apply(checkpoints_.Snapshot(node.rank, h.checkpoint_done(), Here(), Now()));
    case proto::CHECKPOINT_DONE:
      if (node.role != proto::SERVER) break;
      return Apply(checkpoints_.PartWritten(node.rank, h.checkpoint_done(), Here(), Now()));
    case proto::MEMBERSHIP_ACK:
      if (node.role != proto::SERVER) break;
      return HandleMembershipAck(node, h.membership_ack());
    default:
      break;
  }
  LOG(WARNING) << "dropped " << proto::Op_Name(h.op()) << " from " << proto::Role_Name(node.role) << " "
               << node.rank;
  return OkStatus();
}

Status Scheduler::HandleHeartbeat(const Message& m) {
  const proto::Header& h = m.header;
  if (h.job_id() != job_id_ || !members_.Heartbeat(h.sender_role(), h.sender_rank(), Now())) {
    LOG(WARNING) << "dropped a heartbeat from an unknown node";
    return OkStatus();
  }
  proto::Header answer;
  answer.set_op(proto::HEARTBEAT);
  answer.set_job_id(job_id_);
  answer.set_sender_role(proto::SCHEDULER);
  socket_->Send(answer, {}, m.peer).IgnoreError();  // the node notices missing answers itself
  return OkStatus();
}

Status Scheduler::CheckHeartbeats() {
  if (!started_) return OkStatus();
  const auto timeout = std::chrono::milliseconds(options_.spec.cluster().heartbeat_timeout_ms());
  const std::vector<Membership::Silent> silent = members_.SilentNodes(Now(), timeout);
  for (const Membership::Silent& node : silent) {
    if (node.role == proto::SERVER) return LoseServer(*members_.Find(node.peer), node.why);
  }
  for (const Membership::Silent& node : silent) RETURN_IF_ERROR(LoseWorker(node.peer, node.why));
  return OkStatus();
}

Status Scheduler::LoseServer(const Node& lost, const std::string& why) {
  const std::string what = "SERVER " + std::to_string(lost.rank) + " (pid " + std::to_string(lost.pid) + ") " + why;
  if (options_.rollbacks_done >= options_.max_rollbacks || stopping_) {
    return UnavailableError(what + (options_.max_rollbacks > 0 ? " (no rollbacks left)" : ""));
  }
  rollback_reason_ = what;
  LOG(WARNING) << what << "; rolling the job back to its newest checkpoint: waiting for a replacement server";
  const int workers = static_cast<int>(members_.LiveWorkers().size()), wanted = options_.spec.cluster().workers();
  if (workers + members_.standby_workers() < wanted) {
    // The next run starts with the job's full count, as a resume does.
    LOG(WARNING) << "the job has " << workers << " of its " << wanted
                 << " workers: the rolled-back job also waits for replacement workers (tessera worker --scheduler ...)";
  }
  JsonObject line;
  line.Add("event", "rollback").Add("reason", what).Add("step", progress_.latest_step()).Add("epoch", epoch_ + 1);
  metrics_.Record(line);
  proto::Header h;
  h.set_op(proto::ROLLBACK);
  h.set_job_id(job_id_);
  h.set_sender_role(proto::SCHEDULER);
  h.mutable_rollback()->set_reason(what);
  // The lost server too: if it was only silent for a while, it registers
  // again like the others (a gone one needs no word).
  for (const auto& [peer, node] : members_.nodes()) socket_->Send(h, {}, peer).IgnoreError();
  return AbortedError("rolling back: " + what);
}

Status Scheduler::HandleNodeExited(const proto::NodeExited& exited) {
  if (const Node* found = members_.FindByPid(exited.pid()); found != nullptr) {
    const Node node = *found;  // what follows may remove it
    const std::string why = "exited with code " + std::to_string(exited.exit_code()) + ": it is lost";
    if (node.role == proto::WORKER) {
      // Before the start its rank is not yet in use: after the start its
      // heartbeats (or the failed map) lose it, and a standby takes its rank.
      if (started_ || node.standby) return LoseWorker(node.peer, why);
      LOG(INFO) << "process " << exited.pid() << " exited; it is no node taking part in this job";
      return OkStatus();
    }
    if (node.standby) {  // a spare server: nothing depended on it
      LOG(WARNING) << "spare server (pid " << node.pid << ") " << why;
      members_.Remove(node.peer);
      return OkStatus();
    }
    if (!started_) {
      // The job cannot form without it (its slices wait for it): end now
      // rather than at the register timeout.
      return UnavailableError("SERVER " + std::to_string(node.rank) + " (pid " + std::to_string(node.pid) + ") " +
                              why + " before the job started");
    }
    return LoseServer(node, why);
  }
  LOG(INFO) << "process " << exited.pid() << " exited; it is no node taking part in this job";
  return OkStatus();
}

Status Scheduler::LoseWorker(const std::string& peer, const std::string& why) {
  const std::optional<Node> removed = members_.Remove(peer);
  if (!removed.has_value()) return OkStatus();
  const Node& node = *removed;
  // Should it be alive after all, it must stop: its rank goes to another worker.
  proto::Header bye;
  bye.set_op(proto::SHUTDOWN);
  bye.set_job_id(job_id_);
  bye.set_sender_role(proto::SCHEDULER);
  bye.mutable_shutdown()->set_reason("this worker was declared lost: " + why);
  socket_->Send(bye, {}, peer).IgnoreError();
  if (node.standby) {
    LOG(WARNING) << "standby worker (pid " << node.pid << ") " << why;
    return OkStatus();
  }
  const int r = node.rank;
  ++results_.workers_lost;
  const bool in_part = phase_running_ && participants_[r] && !phase_reports_[r].has_value();
  LOG(WARNING) << "worker " << r << " (pid " << node.pid << ") " << why << "; the job goes on with "
               << members_.LiveWorkers().size() << " workers"
               << (!in_part ? ""
                   : in_test_ ? ", and its test shards go to the others"
                              : ", and its positions of this phase not yet trained go to the others");
  JsonObject line;
  line.Add("event", "worker_lost")
      .Add("rank", r)
      .Add("pid", node.pid)
      .Add("epoch", epoch_ + 1)
      .Add("step", progress_.latest_step())
      .Add("workers", static_cast<int64_t>(members_.LiveWorkers().size()))
      .Add("reason", why);
  metrics_.Record(line);
  if (members_.LiveWorkers().empty()) no_workers_since_ = Now();
  if (in_part) {
    lost_in_phase_[r] = true;
    if (!in_test_) {
      epoch_disturbed_ = true;
      checkpoints_.WorkerLostInEpoch(r);
    }
  }
  // The servers stop waiting for it.
  std::vector<bool> active = server_active_;
  active[r] = false;
  RETURN_IF_ERROR(SendMembership(active));
  if (in_part) {
    if (in_test_) {
      leases_.HandBack(r, 0, 1);  // its evaluation results are lost with it: all its test shards go back
    } else {
      LostWorker lost;
      lost.rank = r;
      lost.seq = membership_seq_;
      lost_pending_.push_back(lost);  // the hand-back waits for how far its pushes reached
    }
  }
  RETURN_IF_ERROR(AssignStandby());
  RETURN_IF_ERROR(MaybeFinishPart());
  return MaybeRunPendingStart();
}

Status Scheduler::SendMembership(const std::vector<bool>& active) {
  server_active_ = active;
  proto::Header h;
  h.set_op(proto::MEMBERSHIP);
  h.set_job_id(job_id_);
  h.set_sender_role(proto::SCHEDULER);
  h.mutable_membership()->set_seq(++membership_seq_);
  if (wanted_schedule_offset_ != server_schedule_offset_) {
    h.mutable_membership()->set_schedule_step_offset(wanted_schedule_offset_);
    LOG(INFO) << "learning-rate schedule re-anchored: step offset " << wanted_schedule_offset_ << " from step "
              << global_step_;
    server_schedule_offset_ = wanted_schedule_offset_;
  }
  for (size_t r = 0; r < active.size(); ++r) {
    if (active[r]) h.mutable_membership()->add_active(static_cast<int>(r));
  }
  MembershipChange change;
  change.seq = membership_seq_;
  membership_changes_.push_back(change);
  return SendToServers(h);
}

Status Scheduler::HandleMembershipAck(const Node& node, const proto::MembershipAck& ack) {
  auto change = std::find_if(membership_changes_.begin(), membership_changes_.end(),
                             [&](const MembershipChange& c) { return c.seq == ack.seq(); });
  if (change == membership_changes_.end()) {
    LOG(WARNING) << "dropped a MEMBERSHIP_ACK for change " << ack.seq() << " from server " << node.rank;
    return OkStatus();
  }
  for (const proto::RankReach& reach : ack.left()) {
    for (LostWorker& lost : lost_pending_) {
      if (lost.rank != reach.rank() || lost.seq != ack.seq() || !reach.has_slices()) continue;
      lost.min_step = std::min(lost.min_step, reach.min_step());
      lost.max_step = std::max(lost.max_step, reach.max_step());
    }
  }
  if (++change->acks < members_.registered_servers()) return OkStatus();
  membership_changes_.erase(change);
  // Every server has it: the lost workers of this change hand their positions back.
  const int batch = options_.spec.batch_size();
  std::vector<LostWorker> still;
  for (const LostWorker& lost : lost_pending_) {
    if (lost.seq != ack.seq()) {
      still.push_back(lost);
      continue;
    }
    // Its steps of this part: those whose push reached every slice (from the
    // part's first step on); a step that reached only some slices (it died
    // between the parts of one push) is handed back too.
    const int64_t reached = lost.min_step == INT64_MAX ? phase_first_step_ - 1 : lost.min_step;
    const int64_t steps = std::max(phase_skip_steps_, std::max<int64_t>(0, reached - phase_first_step_ + 1));
    const int64_t used = leases_.HandBack(lost.rank, steps, batch);
    epoch_lost_examples_ += used;
    part_worker_steps_ += std::max<int64_t>(0, reached - phase_first_step_ + 1);
    LOG(INFO) << "worker " << lost.rank << " had done " << steps << " steps of this phase part (" << used
              << " examples); " << leases_.returned_examples() << " examples go to the workers left";
    if (lost.max_step > reached) {
      LOG(WARNING) << "worker " << lost.rank << " was lost between the parts of its push for step " << reached + 1
                   << ": the slices that got it applied it, the others did not; its examples are trained again";
    }
  }
  lost_pending_ = std::move(still);
  RETURN_IF_ERROR(MaybeFinishPart());
  return MaybeRunPendingStart();
}

Status Scheduler::AssignStandby() {
  while (std::optional<Node> node = members_.AssignStandby(Now())) {
    ++results_.workers_joined;
    LOG(INFO) << "worker (pid " << node->pid << ") joins as rank " << node->rank << "; it takes part from the next phase";
    JsonObject line;
    line.Add("event", "worker_joined").Add("rank", node->rank).Add("pid", node->pid).Add("epoch", epoch_ + 1);
    metrics_.Record(line);
    RETURN_IF_ERROR(SendMap(*node));
  }
  return MaybeRunPendingStart();
}

Status Scheduler::HandleRegister(const Message& m) {
  const proto::Register& r = m.header.register_();
  std::string refusal;
  switch (members_.Register(m.peer, r, Now(), &refusal)) {
    case Membership::Admission::kDropped:
      LOG(WARNING) << "dropped a REGISTER with role " << proto::Role_Name(r.role()) << " (a second one from one peer, "
                   << "or neither server nor worker)";
      return OkStatus();
    case Membership::Admission::kRefused: {
      LOG(WARNING) << "refused a " << proto::Role_Name(r.role()) << ": " << refusal;
      proto::Header h;
      h.set_op(proto::SHUTDOWN);
      h.mutable_shutdown()->set_reason(refusal);
      socket_->Send(h, {}, m.peer).IgnoreError();  // it may already be gone
      return OkStatus();
    }
    case Membership::Admission::kSpare:
      // It takes part after a rollback (a lost server's replacement may register before the loss is noticed).
      LOG(INFO) << "server (pid " << r.pid() << ") at " << r.address() << " registered as a spare: the job has all its servers";
      return OkStatus();
    case Membership::Admission::kStandby:
      LOG(INFO) << "worker (pid " << r.pid() << ") registered as a standby: the job has all its workers";
      return AssignStandby();
    case Membership::Admission::kRanked:
      break;
  }
  const Node& node = *members_.Find(m.peer);
  LOG(INFO) << proto::Role_Name(r.role()) << " " << node.rank << " registered (pid " << r.pid() << ")"
            << (node.address.empty() ? "" : " at " + node.address);
  if (r.role() == proto::SERVER && members_.AllServersIn()) {
    // Every server known: each can be told its ranges.
    for (const std::string& peer : members_.server_peers()) RETURN_IF_ERROR(SendMap(*members_.Find(peer)));
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
  map->set_num_keys(shape_.num_keys);
  map->set_train_examples(shape_.train_examples);
  map->set_test_examples(shape_.test_examples);
  if (node.role == proto::SERVER && restore_.has_value()) *map->mutable_restore() = *restore_;
  LeaseBook plan;  // servers' learning-rate schedules count epochs in these steps (ASP: pushes)
  plan.StartTraining(0, shape_.train_examples, options_.spec.data().shards_per_worker() * map->num_workers(),
                     map->num_workers(), options_.spec.consistency() == proto::BSP);
  map->set_steps_per_epoch(plan.StepsPerWorker(options_.spec.batch_size()));
  // Resumed with other workers, the schedule goes on from the epoch, not the step.
  const int64_t epoch_began = restore_.has_value() ? restore_->step() - start_skip_steps_ : 0;
  map->set_schedule_step_offset(start_epoch_ * map->steps_per_epoch() - epoch_began);
  if (steps_per_epoch_ == 0) {  // the first map; a later one (a joining worker's) must not undo a re-anchoring
    steps_per_epoch_ = map->steps_per_epoch();
    server_schedule_offset_ = wanted_schedule_offset_ = map->schedule_step_offset();
  }
  for (const proto::TensorMeta& t : shape_.tensors) *map->add_tensors() = t;
  for (size_t s = 0; s < members_.server_peers().size(); ++s) {
    proto::ServerInfo* info = map->add_servers();
    info->set_rank(static_cast<int>(s));
    info->set_address(members_.nodes().at(members_.server_peers()[s]).address);
    for (const KeyRange& r : shape_.server_ranges[s]) {
      proto::KeyRange* out = info->add_ranges();
      out->set_begin(r.begin);
      out->set_end(r.end);
    }
  }
  if (node.role == proto::WORKER) return SendToWorker(node.peer, h);
  return socket_->Send(h, {}, node.peer);
}

Status Scheduler::MaybeStartJob() {
  const proto::ClusterSpec& c = options_.spec.cluster();
  if (started_ || !members_.Formed()) return OkStatus();
  started_ = true;
  RETURN_IF_ERROR(AbandonLaterCheckpoints());
  server_active_.assign(members_.registered_workers(), true);  // the servers start with every worker taking part
  // Heartbeats start with the cluster map: count silence from now.
  members_.StartHeartbeats(Now());
  LOG(INFO) << "all " << c.servers() << " servers and " << c.workers() << " workers are in; starting";
  for (const std::string& peer : std::vector<std::string>(members_.worker_peers())) {
    if (const Node* node = members_.Find(peer); node != nullptr) RETURN_IF_ERROR(SendMap(*node));
  }
  checkpoints_.Start(global_step_, Now());
  if (evaluate_only_) {
    epoch_ = options_.spec.epochs() - 1;
    LOG(INFO) << "training is complete at step " << global_step_ << "; running the final evaluation only";
    return Proceed(NextPhase::Evaluation(epoch_));
  }
  return Proceed(NextPhase::Training(start_epoch_, start_skip_steps_));
}

Status Scheduler::AbandonLaterCheckpoints() {
  if (!restore_.has_value() || options_.run_dir.empty()) return OkStatus();
  const std::string& dir = restore_->dir();
  std::error_code ec;
  if (std::filesystem::absolute(options_.run_dir, ec).lexically_normal() != std::filesystem::path(RunDirOf(dir))) {
    return OkStatus();  // resumed from another run's checkpoint: this run has none past it
  }
  // Checkpoints past this one belong to the timeline being abandoned. Only
  // now: after a rollback, the servers of the last run finished their writes
  // (some into those directories) before they registered again.
  std::vector<std::string> removed;
  RETURN_IF_ERROR(RemoveCheckpointsAfter(RunDirOf(dir) + "/checkpoints", restore_->step(), &removed));
  for (const std::string& name : removed) LOG(INFO) << "removed checkpoint " << name << ", past the resume point";
  return UpdateLatest(RunDirOf(dir) + "/checkpoints", CheckpointName(restore_->step()));
}

Status Scheduler::BeginStop() {
  stopping_ = true;
  stop_deadline_ = Now() + std::chrono::seconds(60);
  return Apply(checkpoints_.Stop(Here(), /*can_cut=*/started_ && !in_test_ && !epoch_disturbed_, Now()));
}

CheckpointCoordinator::Position Scheduler::Here() const {
  CheckpointCoordinator::Position at;
  at.epoch = epoch_;
  at.epoch_first_step = phase_first_step_;
  at.epoch_end_step = phase_first_step_ + phase_steps_;
  at.global_step = global_step_;
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
    proto::Header h;
    h.set_op(proto::CHECKPOINT);
    h.set_job_id(job_id_);
    h.set_sender_role(proto::SCHEDULER);
    *h.mutable_checkpoint() = *a.request;
    RETURN_IF_ERROR(SendToServers(h));
  }
  return a.go_on.has_value() ? Proceed(*a.go_on) : OkStatus();
}

Status Scheduler::Proceed(const NextPhase& next) {
  if (next.kind == NextPhase::Kind::kTraining && options_.spec.consistency() == proto::BSP && steps_per_epoch_ > 0) {
    // Under BSP the schedule counts epochs in steps_per_epoch steps; an epoch
    // a lost worker's continuation made longer would leave it running early,
    // so each epoch re-anchors it at the step the epoch begins at.
    wanted_schedule_offset_ = next.epoch * steps_per_epoch_ - (global_step_ - next.skip_steps);
  }
  pending_start_ = next;
  return MaybeRunPendingStart();
}

Status Scheduler::MaybeRunPendingStart() {
  if (!pending_start_.has_value() || stopping_) return OkStatus();
  const std::vector<int> live = members_.LiveWorkers();
  if (live.empty()) return OkStatus();  // waits for a worker to join (or the no-worker deadline)
  std::vector<bool> active(members_.registered_workers(), false);
  for (int r : live) active[r] = true;
  // Workers that joined take part from now on: the servers must know before any of them pushes.
  if (active != server_active_ || wanted_schedule_offset_ != server_schedule_offset_) {
    RETURN_IF_ERROR(SendMembership(active));
  }
  if (!membership_changes_.empty()) return OkStatus();  // until every server has acknowledged
  const NextPhase next = *pending_start_;
  pending_start_.reset();
  return Begin(next);
}

Status Scheduler::Begin(const NextPhase& next) {
  switch (next.kind) {
    case NextPhase::Kind::kTraining:
      return BeginTraining(next.epoch, next.skip_steps);
    case NextPhase::Kind::kEvaluation:
      return BeginEvaluation(next.epoch);
    case NextPhase::Kind::kContinuation:
      leases_.StartContinuation(members_.LiveWorkers());
      return BeginPart(next.part, global_step_, 0);
  }
  return InternalError("unknown phase kind");
}

Status Scheduler::BeginTraining(int epoch, int64_t skip_steps) {
  const proto::JobSpec& spec = options_.spec;
  const int workers = spec.cluster().workers();
  const bool bsp = spec.consistency() == proto::BSP;
  const std::vector<int> live = members_.LiveWorkers();
  leases_.StartTraining(epoch, shape_.train_examples, spec.data().shards_per_worker() * workers, live, bsp);
  epoch_ = epoch;
  in_test_ = false;
  phase_loss_ = phase_correct_ = 0;
  phase_examples_ = phase_skipped_ = epoch_lost_examples_ = 0;
  // With a worker missing, the epoch's plan is not the fixed one of all workers.
  epoch_disturbed_ = static_cast<int>(live.size()) != workers;
  phase_start_ = Now();
  progress_.EpochStarted(phase_start_);
  LOG(INFO) << "epoch " << epoch + 1 << "/" << spec.epochs() << " starts at step " << global_step_ << " with "
            << live.size() << " of " << workers << " workers";
  return BeginPart(0, global_step_ - skip_steps, skip_steps);
}

Status Scheduler::BeginPart(int part, int64_t first_step, int64_t skip_steps) {
  const proto::JobSpec& spec = options_.spec;
  const int workers = spec.cluster().workers();
  const std::vector<int> live = members_.LiveWorkers();
  phase_part_ = part;
  phase_running_ = true;
  phase_done_count_ = 0;
  phase_reports_.assign(workers, std::nullopt);
  participants_.assign(workers, false);
  lost_in_phase_.assign(workers, false);
  for (int r : live) participants_[r] = true;
  reporter_rank_ = live.empty() ? 0 : live.front();
  part_worker_steps_ = 0;
  proto::Header h;
  h.set_op(proto::START_PHASE);
  h.mutable_phase()->set_epoch(epoch_);
  h.mutable_phase()->set_part(part);
  h.mutable_phase()->set_reporter_rank(reporter_rank_);
  if (in_test_) {
    h.mutable_phase()->set_test(true);
    h.mutable_phase()->set_final(phase_final_);
  } else {
    phase_steps_ = spec.consistency() == proto::BSP ? leases_.StepsPerWorker(spec.batch_size()) : 0;
    phase_skip_steps_ = skip_steps;
    phase_first_step_ = first_step;
    progress_.PartStarted(global_step_);
    h.mutable_phase()->set_steps(phase_steps_);
    h.mutable_phase()->set_first_step(phase_first_step_);
    h.mutable_phase()->set_skip_steps(skip_steps);
  }
  if (part > 0) {
    LOG(INFO) << (in_test_ ? "evaluation" : "epoch") << " " << epoch_ + 1 << ", part " << part + 1 << ": "
              << live.size() << " workers take the positions lost workers left"
              << (in_test_ || spec.consistency() != proto::BSP
                      ? ""
                      : ", " + std::to_string(phase_steps_) + " steps from step " + std::to_string(first_step));
  }
  return SendToWorkers(h);
}

Status Scheduler::BeginEvaluation(int epoch) {
  const proto::JobSpec& spec = options_.spec;
  const int workers = spec.cluster().workers();
  // Under BSP each worker evaluates fixed shards, so the summed test loss is reproducible.
  leases_.StartTest(epoch, shape_.test_examples, std::max(1, workers * spec.data().shards_per_worker()), members_.LiveWorkers(),
                    spec.consistency() == proto::BSP);
  epoch_ = epoch;
  in_test_ = true;
  phase_final_ = epoch + 1 == spec.epochs();
  phase_loss_ = phase_correct_ = 0;
  phase_examples_ = 0;
  return BeginPart(0, global_step_, 0);
}

Status Scheduler::HandlePhaseDone(const Node& node, const proto::PhaseDone& done) {
  if (!phase_running_ || done.epoch() != epoch_ || done.test() != in_test_ || done.part() != phase_part_ ||
      !participants_[node.rank]) {
    LOG(WARNING) << "dropped a PHASE_DONE for another phase from worker " << node.rank;
    return OkStatus();
  }
  if (phase_reports_[node.rank].has_value()) {
    LOG(WARNING) << "dropped a second PHASE_DONE from worker " << node.rank;
    return OkStatus();
  }
  phase_reports_[node.rank] = done;
  ++phase_done_count_;
  return MaybeFinishPart();
}

Status Scheduler::MaybeFinishPart() {
  if (!phase_running_) return OkStatus();
  for (size_t r = 0; r < participants_.size(); ++r) {
    if (participants_[r] && !lost_in_phase_[r] && !phase_reports_[r].has_value()) return OkStatus();
  }
  for (const LostWorker& lost : lost_pending_) {
    if (lost_in_phase_[lost.rank]) return OkStatus();  // how far it got is not known yet
  }
  phase_running_ = false;
  return FinishPart();
}

Status Scheduler::FinishPart() {
  // Add the reports up in rank order, so the figures are the same in every run.
  for (const std::optional<proto::PhaseDone>& report : phase_reports_) {
    if (!report.has_value()) continue;
    phase_loss_ += report->loss_sum();
    phase_correct_ += report->correct();
    phase_examples_ += report->examples();
    phase_skipped_ += report->skipped_examples();
    part_worker_steps_ += report->steps();
    results_.AddWorkerReport(*report, /*training=*/!in_test_);
  }
  // The reporter's digest; none when it was lost (a manifest then goes without one).
  const std::optional<proto::PhaseDone>& reporter = phase_reports_[reporter_rank_];
  const std::string digest = reporter.has_value() ? reporter->params_sha256() : "";
  if (!in_test_ || !digest.empty()) results_.params_sha256 = digest;
  if (!in_test_) {
    const proto::JobSpec& spec = options_.spec;
    global_step_ = spec.consistency() == proto::BSP ? phase_first_step_ + phase_steps_ : global_step_ + part_worker_steps_;
  }
  if (stopping_) return OkStatus();  // no new phase: the job is stopping
  // Positions of lost workers left: a continuation over them (the final
  // evaluation also when its reporter was lost, for the digest and params.bin).
  const bool more = leases_.has_returned() || (in_test_ && phase_final_ && !reporter.has_value());
  if (more) {
    return Proceed(NextPhase::Continuation(phase_part_ + 1));
  }
  return in_test_ ? FinishEvaluation() : FinishTrainingEpoch();
}

Status Scheduler::FinishTrainingEpoch() {
  const proto::JobSpec& spec = options_.spec;
  const bool last_epoch = epoch_ + 1 == spec.epochs();
  const double seconds = Seconds(Now() - phase_start_);
  const int64_t trained = phase_examples_ + epoch_lost_examples_;  // lost workers' examples before they were lost included
  results_.AddEpoch(seconds, trained);
  results_.last_train_loss = phase_examples_ > 0 ? phase_loss_ / phase_examples_ : 0;
  const int64_t counted = trained + phase_skipped_;
  results_.examples_by_epoch.push_back(counted);
  if (counted != shape_.train_examples) {
    return InternalError("epoch " + std::to_string(epoch_ + 1) + " trained on " + std::to_string(trained) +
                         " examples (" + std::to_string(phase_skipped_) + " done before resuming), expected " +
                         std::to_string(shape_.train_examples));
  }
  JsonObject line;
  line.Add("event", "epoch")
      .Add("epoch", epoch_ + 1)
      .Add("epochs", spec.epochs())
      .Add("step", global_step_)
      .Add("train_loss", results_.last_train_loss)
      .Add("examples", trained)
      .Add("samples_per_sec", trained / seconds)
      .Add("epoch_seconds", seconds);
  if (epoch_disturbed_) line.Add("workers", static_cast<int64_t>(members_.LiveWorkers().size()));
  if (phase_part_ > 0 || epoch_lost_examples_ > 0) {
    line.Add("parts", phase_part_ + 1).Add("examples_of_lost_workers", epoch_lost_examples_);
  }
  metrics_.Record(line);
  LOG(INFO) << "epoch " << epoch_ + 1 << " done: train loss " << results_.last_train_loss << ", " << trained / seconds
            << " samples/s, " << counted << " examples";
  const NextPhase next = spec.eval_every_epoch() || last_epoch ? NextPhase::Evaluation(epoch_)
                                                               : NextPhase::Training(epoch_ + 1);
  if (checkpoints_.Due(epoch_ + 1)) return Apply(checkpoints_.EpochEnded(epoch_ + 1, Here(), next, Now()));
  return Proceed(next);
}

Status Scheduler::FinishEvaluation() {
  const proto::JobSpec& spec = options_.spec;
  const bool last_epoch = epoch_ + 1 == spec.epochs();
  results_.test_accuracy = phase_examples_ > 0 ? phase_correct_ / phase_examples_ : 0;
  results_.test_loss = phase_examples_ > 0 ? phase_loss_ / phase_examples_ : 0;
  JsonObject line;
  line.Add("event", "eval")
      .Add("epoch", epoch_ + 1)
      .Add("epochs", spec.epochs())
      .Add("test_accuracy", results_.test_accuracy)
      .Add("test_loss", results_.test_loss)
      .Add("examples", phase_examples_);
  metrics_.Record(line);
  LOG(INFO) << "epoch " << epoch_ + 1 << " test accuracy " << results_.test_accuracy << " (" << phase_examples_ << " examples)";
  if (phase_examples_ != shape_.test_examples) {
    return InternalError("evaluation saw " + std::to_string(phase_examples_) + " examples, expected " +
                         std::to_string(shape_.test_examples));
  }
  if (last_epoch) {
    finished_ = true;  // done once the final checkpoint, if any, has committed
    return OkStatus();
  }
  return Proceed(NextPhase::Training(epoch_ + 1));
}

Status Scheduler::HandleProgress(const proto::Progress& p) {
  if (in_test_ || p.epoch() != epoch_ || p.examples() < 0) return OkStatus();
  EpochProgress::Context context;
  context.epoch = epoch_;
  context.epochs = options_.spec.epochs();
  context.train_examples = shape_.train_examples;
  context.trained_seconds = results_.train_seconds;
  context.epoch_start = phase_start_;
  context.job_start = start_time_;
  const std::optional<JsonObject> line = progress_.Report(p, context, Now());
  if (!stopping_) {
    RETURN_IF_ERROR(Apply(checkpoints_.Progressed(Here(), /*can_cut=*/!epoch_disturbed_, Now())));
  }
  if (line.has_value()) metrics_.Record(*line);
  return OkStatus();
}

Status Scheduler::SendToWorkers(const proto::Header& h) {
  proto::Header out = h;
  out.set_job_id(job_id_);
  out.set_sender_role(proto::SCHEDULER);
  std::vector<std::string> gone;
  for (const std::string& peer : members_.worker_peers()) {
    if (peer.empty()) continue;
    Status sent = socket_->Send(out, {}, peer);
    if (sent.code() == StatusCode::kUnavailable) {
      gone.push_back(peer);
    } else {
      RETURN_IF_ERROR(sent);
    }
  }
  for (const std::string& peer : gone) RETURN_IF_ERROR(LoseWorker(peer, "its connection is gone"));
  return OkStatus();
}

Status Scheduler::SendToServers(const proto::Header& h) {
  for (const std::string& peer : members_.server_peers()) {
    Status sent = socket_->Send(h, {}, peer);
    if (sent.code() != StatusCode::kUnavailable) {
      RETURN_IF_ERROR(sent);
      continue;
    }
    // Gone before its heartbeats stopped counting: lost all the same.
    const Node* node = members_.Find(peer);
    if (node == nullptr) return sent;
    return LoseServer(*node, "has no connection any more: it is lost");
  }
  return OkStatus();
}

Status Scheduler::SendToWorker(const std::string& peer, const proto::Header& h) {
  Status sent = socket_->Send(h, {}, peer);
  if (sent.code() != StatusCode::kUnavailable) return sent;
  const std::string gone = peer;  // LoseWorker drops the node that may hold `peer`
  return LoseWorker(gone, "its connection is gone");
}

void Scheduler::ShutdownAll(const std::string& reason) {
  if (socket_ == nullptr) return;
  proto::Header h;
  h.set_op(proto::SHUTDOWN);
  h.set_job_id(job_id_);
  h.set_sender_role(proto::SCHEDULER);
  if (!reason.empty()) h.mutable_shutdown()->set_reason(reason);
  for (const auto& [peer, node] : members_.nodes()) socket_->Send(h, {}, peer).IgnoreError();  // gone nodes need no word
}

Status Scheduler::WriteSummary() {
  LOG(INFO) << "job done: test accuracy " << results_.test_accuracy << ", params_sha256 " << results_.params_sha256;
  if (options_.run_dir.empty()) return OkStatus();
  SummaryFacts facts;
  facts.steps = global_step_;
  facts.wall_seconds = Seconds(Now() - start_time_);
  facts.resumed_from_step = resumed_from_step_;
  facts.server_rollbacks = options_.rollbacks_done;
  return WriteFileAtomic(options_.run_dir + "/summary.json", SummaryJson(options_.spec, shape_, results_, facts));
}

}  // namespace tessera
