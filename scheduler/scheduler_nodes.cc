// The scheduler's handling of nodes coming and going: registration, the
// cluster map, heartbeats, exits reported by the local launcher, lost
// workers and servers, standbys taking free ranks, and the membership
// changes each server acknowledges. The rest of the event loop is in
// scheduler.cc.
#include "scheduler/scheduler.h"

#include <algorithm>

#include "core/json.h"

namespace tessera {

using Stage = PhaseRunner::Stage;

Status Scheduler::HandleHeartbeat(const Message& m) {
  const proto::Header& h = m.header;
  if (h.job_id() != job_id_ || !members_.Heartbeat(h.sender_role(), h.sender_rank(), Now())) {
    drops_.Drop("dropped a heartbeat from an unknown node");
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
  if (phases_.stage() == Stage::kForming) return OkStatus();
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
  if (options_.rollbacks_done >= options_.max_rollbacks || phases_.stage() == Stage::kStopping) {
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
  line.Add("event", "rollback")
      .Add("reason", what)
      .Add("pid", lost.pid)
      .Add("step", progress_.latest_step())
      .Add("epoch", phases_.epoch() + 1);
  metrics_.Record(line);
  proto::Header h = Header(proto::ROLLBACK);
  h.mutable_rollback()->set_reason(what);
  // The lost server too: if it was only silent for a while, it registers
  // again like the others (a gone one needs no word).
  for (const auto& [peer, node] : members_.nodes()) socket_->Send(h, {}, peer).IgnoreError();
  return AbortedError("rolling back: " + what);
}

Status Scheduler::HandleNodeExited(const proto::NodeExited& exited) {
  if (options_.launcher_token.empty() || exited.token() != options_.launcher_token) {
    LOG(WARNING) << "dropped a NODE_EXITED without the launcher's token (for pid " << exited.pid() << ")";
    return OkStatus();
  }
  if (const Node* found = members_.FindByPid(exited.pid()); found != nullptr) {
    const Node node = *found;  // what follows may remove it
    const std::string why = "exited with code " + std::to_string(exited.exit_code()) + ": it is lost";
    if (node.role == proto::WORKER) {
      // Before the start its rank is not yet in use: after the start its
      // heartbeats (or the failed map) lose it, and a standby takes its rank.
      if (phases_.stage() != Stage::kForming || node.standby) return LoseWorker(node.peer, why);
      LOG(INFO) << "process " << exited.pid() << " exited; it is no node taking part in this job";
      return OkStatus();
    }
    if (node.standby) {  // a spare server: nothing depended on it
      LOG(WARNING) << "spare server (pid " << node.pid << ") " << why;
      members_.Remove(node.peer);
      return OkStatus();
    }
    if (phases_.stage() == Stage::kForming) {
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
  proto::Header bye = Header(proto::SHUTDOWN);
  bye.mutable_shutdown()->set_reason("this worker was declared lost: " + why);
  socket_->Send(bye, {}, peer).IgnoreError();
  if (node.standby) {
    LOG(WARNING) << "standby worker (pid " << node.pid << ") " << why;
    return OkStatus();
  }
  const int r = node.rank;
  ++results_.workers_lost;
  // Marks it lost in its running part (an evaluation's test shards go back at once).
  const bool in_part = phases_.WorkerLost(r);
  const bool in_test = phases_.in_test();
  LOG(WARNING) << "worker " << r << " (pid " << node.pid << ") " << why << "; the job goes on with "
               << members_.LiveWorkers().size() << " workers"
               << (!in_part ? ""
                   : in_test ? ", and its test shards go to the others"
                              : ", and its positions of this phase not yet trained go to the others");
  JsonObject line;
  line.Add("event", "worker_lost")
      .Add("rank", r)
      .Add("pid", node.pid)
      .Add("epoch", phases_.epoch() + 1)
      .Add("step", progress_.latest_step())
      .Add("workers", static_cast<int64_t>(members_.LiveWorkers().size()))
      .Add("reason", why);
  metrics_.Record(line);
  if (members_.LiveWorkers().empty()) no_workers_since_ = Now();
  if (in_part && !in_test) RETURN_IF_ERROR(Apply(checkpoints_.WorkerLostInEpoch(r, Here(), Now())));
  // The servers stop waiting for it.
  std::vector<bool> active = server_membership_.active();
  active[r] = false;
  RETURN_IF_ERROR(SendMembership(active));
  // In training its hand-back waits for how far its pushes reached.
  if (in_part && !in_test) phases_.WaitForReach(r, server_membership_.seq());
  RETURN_IF_ERROR(AssignStandby());
  return Apply(phases_.FinishPartIfComplete(static_cast<int>(members_.LiveWorkers().size()), Now()));
}

Status Scheduler::SendMembership(const std::vector<bool>& active) {
  WantScheduleOffset();
  proto::Header h = Header(proto::MEMBERSHIP);
  *h.mutable_membership() = server_membership_.Change(active);
  if (phases_.servers_must_advance()) {
    h.mutable_membership()->set_advance_to_step(phases_.global_step());
    LOG(INFO) << "every worker of the last part was lost: the servers' slices move up to step "
              << phases_.global_step() << ", where the next part starts";
  }
  if (h.membership().has_schedule_step_offset()) {
    LOG(INFO) << "learning-rate schedule re-anchored: step offset " << h.membership().schedule_step_offset()
              << " from step " << phases_.global_step();
  }
  return SendToServers(h);
}

Status Scheduler::HandleMembershipAck(const Node& node, const proto::MembershipAck& ack) {
  bool settled = false;
  if (!server_membership_.Acknowledge(ack.seq(), members_.registered_servers(), &settled)) {
    drops_.Drop("dropped a MEMBERSHIP_ACK for change " + std::to_string(ack.seq()) + " from server " +
                std::to_string(node.rank));
    return OkStatus();
  }
  for (const proto::RankReach& reach : ack.left()) phases_.ReachReported(ack.seq(), reach);
  if (!settled) return OkStatus();
  // Every server has it: the lost workers of this change hand their positions back.
  phases_.ChangeAcknowledged(ack.seq());
  return Apply(phases_.FinishPartIfComplete(static_cast<int>(members_.LiveWorkers().size()), Now()));
}

Status Scheduler::AssignStandby() {
  while (std::optional<Node> node = members_.AssignStandby(Now())) {
    ++results_.workers_joined;
    LOG(INFO) << "worker (pid " << node->pid << ") joins as rank " << node->rank << "; it takes part from the next phase";
    JsonObject line;
    line.Add("event", "worker_joined").Add("rank", node->rank).Add("pid", node->pid).Add("epoch", phases_.epoch() + 1);
    metrics_.Record(line);
    RETURN_IF_ERROR(SendMap(*node));
  }
  return MaybeBegin();
}

Status Scheduler::HandleRegister(const Message& m) {
  const proto::Register& r = m.header.register_();
  if (!options_.cluster_token.empty() && r.token() != options_.cluster_token) {
    drops_.Drop("dropped a REGISTER without the cluster's token (claiming role " + proto::Role_Name(r.role()) +
                ", pid " + std::to_string(r.pid()) + ")");
    return OkStatus();
  }
  std::string refusal;
  switch (members_.Register(m.peer, r, Now(), &refusal)) {
    case Membership::Admission::kDropped:
      drops_.Drop("dropped a REGISTER with role " + proto::Role_Name(r.role()) +
                  " (a second one from one peer, or neither server nor worker)");
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
  JobStart start;
  if (resume_.has_value()) start = JobStart{resume_->start_epoch, resume_->skip_steps, resume_->step};
  std::vector<std::string> addresses;
  for (const std::string& peer : members_.server_peers()) addresses.push_back(members_.nodes().at(peer).address);
  proto::Header h = Header(proto::CLUSTER_MAP);
  proto::ClusterMap* map = h.mutable_cluster_map();
  *map = MakeClusterMap(options_.spec, shape_, addresses, start);
  map->set_rank(node.rank);
  for (int s = 0; s < map->servers_size(); ++s) {
    const std::string& key = members_.nodes().at(members_.server_peers()[s]).curve_public_key;
    map->mutable_servers(s)->set_curve_public_key(key);
  }
  if (node.role == proto::SERVER && resume_.has_value()) *map->mutable_restore() = resume_->restore;
  // The first map sets the schedule; a later one (a joining worker's) must not undo a re-anchoring.
  if (server_membership_.steps_per_epoch() == 0) {
    server_membership_.SetSchedule(map->steps_per_epoch(), map->schedule_step_offset());
  }
  if (node.role == proto::WORKER) return SendToWorker(node.peer, h);
  return socket_->Send(h, {}, node.peer);
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
  proto::Header h = Header(proto::SHUTDOWN);
  if (!reason.empty()) h.mutable_shutdown()->set_reason(reason);
  for (const auto& [peer, node] : members_.nodes()) socket_->Send(h, {}, peer).IgnoreError();  // gone nodes need no word
}

proto::Header Scheduler::Header(proto::Op op) const {
  proto::Header h;
  h.set_op(op);
  h.set_job_id(job_id_);
  h.set_sender_role(proto::SCHEDULER);
  return h;
}

}  // namespace tessera
