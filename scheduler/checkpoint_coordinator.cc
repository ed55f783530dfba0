#include "scheduler/checkpoint_coordinator.h"

#include <glog/logging.h>

#include <algorithm>
#include <ctime>
#include <filesystem>

#include "core/checkpoint_manifest.h"
#include "core/consistency.h"
#include "core/file_util.h"

namespace tessera {
namespace {

double Seconds(Clock::Duration d) { return std::chrono::duration<double>(d).count(); }

std::string Absolute(const std::string& dir) {
  if (dir.empty()) return dir;
  std::error_code ec;
  return std::filesystem::absolute(dir, ec).string();
}

}  // namespace

CheckpointCoordinator::CheckpointCoordinator(const proto::JobSpec& spec, const std::string& run_dir,
                                             const JobShape* shape, const EpochLossLedger* losses,
                                             FileSystem* fs)
    : spec_(spec),
      run_dir_(Absolute(run_dir)),
      shape_(shape),
      losses_(losses),
      fs_(fs),
      servers_(spec.cluster().servers()) {}

void CheckpointCoordinator::Start(int64_t global_step, Clock::TimePoint now) {
  last_cut_time_ = now;
  const int64_t every = spec_.checkpoint().every_steps();
  if (every > 0) next_step_cut_ = (global_step / every + 1) * every;
}

bool CheckpointCoordinator::Due(int epochs_done) const {
  const proto::CheckpointSpec& k = spec_.checkpoint();
  if (!k.enabled() || run_dir_.empty()) return false;
  if (epochs_done == spec_.epochs()) return true;
  return k.every_epochs() > 0 && epochs_done % k.every_epochs() == 0;
}

StatusOr<CheckpointCoordinator::Actions> CheckpointCoordinator::EpochEnded(int epochs_done, const Position& at,
                                                                           const NextPhase& next,
                                                                           Clock::TimePoint now) {
  Actions out;
  if (pending_.has_value()) {
    if (pending_->step == at.global_step) {  // a cut moved to this epoch's end: it is this checkpoint
      out.go_on = next;
      return out;
    }
    if (epochs_done == spec_.epochs()) {
      // The final one must not be lost: servers stay at this step through the
      // final evaluation, so it is taken once the one in progress commits.
      deferred_final_ = true;
      out.go_on = next;
      return out;
    }
    // The previous one is still being written: the job waits at this epoch's
    // end (servers idle at this step) until it commits, then takes this one.
    LOG(WARNING) << "the checkpoint after epoch " << epochs_done << " waits for the one at step " << pending_->step
                 << ", still being written";
    deferred_epoch_cut_ = DeferredEpochCut{epochs_done, next};
    return out;
  }
  RETURN_IF_ERROR(Cut(at.global_step, epochs_done, 0, next, at, now, &out));
  return out;
}

int64_t CheckpointCoordinator::CutLead(const Position& at) {
  // Progress reports come every 0.5 s; a cut 0.8 s of steps ahead of the
  // latest one is ahead of every server, and a refusal moves it further.
  return std::clamp<int64_t>(static_cast<int64_t>(at.steps_per_second * 0.8) + 2, 4, 100000);
}

StatusOr<CheckpointCoordinator::Actions> CheckpointCoordinator::Progressed(const Position& at, bool can_cut,
                                                                           Clock::TimePoint now) {
  Actions out;
  const proto::CheckpointSpec& k = spec_.checkpoint();
  if (pending_.has_value() || !can_cut || !k.enabled() || run_dir_.empty() || !IsSynchronous(spec_)) {
    return out;
  }
  int64_t step = -1, due = -1;
  if (k.every_steps() > 0 && at.latest_step + CutLead(at) >= next_step_cut_) {
    // A cut must be ahead of every server: when the workers are past the
    // step it is due at, it lands later, and the due steps it passes fall into it.
    due = next_step_cut_;
    step = std::max(next_step_cut_, at.latest_step + CutLead(at));
    while (next_step_cut_ <= step) next_step_cut_ += k.every_steps();
  } else if (k.every_seconds() > 0 && Seconds(now - last_cut_time_) >= k.every_seconds()) {
    step = at.latest_step + CutLead(at);
  }
  if (step < 0) return out;
  if (step >= at.epoch_end_step) {
    last_cut_time_ = now;
    // Too close to the epoch's end: the next cut comes later.
    if (due >= 0) out.lines.push_back(SkippedLine(due, at, "the epoch ends at step " +
                                                               std::to_string(at.epoch_end_step) + " first"));
    return out;
  }
  if (due >= 0 && step > due) {
    LOG(INFO) << "checkpoint: the cut due at step " << due << " (every " << k.every_steps() << " steps) lands at step "
              << step << ": the workers are at step " << at.latest_step << " already";
  }
  LOG(INFO) << "checkpoint: cutting at step " << step << " (epoch " << at.epoch + 1 << ")";
  RETURN_IF_ERROR(Cut(step, at.epoch, step - at.epoch_first_step, std::nullopt, at, now, &out));
  return out;
}

StatusOr<CheckpointCoordinator::Actions> CheckpointCoordinator::Stop(const Position& at, bool can_cut,
                                                                     Clock::TimePoint now) {
  Actions out;
  stopping_ = true;
  if (pending_.has_value()) {
    LOG(INFO) << "stop requested: finishing the checkpoint at step " << pending_->step;
    return out;
  }
  // (Not in an epoch that lost a worker: its cursor would not resume.)
  const proto::CheckpointSpec& k = spec_.checkpoint();
  if (!can_cut || !k.enabled() || run_dir_.empty() || !IsSynchronous(spec_)) return out;
  // Cut a little ahead of the workers, at the latest at this epoch's end.
  const int64_t step = std::min(at.latest_step + CutLead(at), at.epoch_end_step);
  LOG(INFO) << "stop requested: final checkpoint at step " << step;
  if (step == at.epoch_end_step) {
    RETURN_IF_ERROR(Cut(step, at.epoch + 1, 0, std::nullopt, at, now, &out));
  } else {
    RETURN_IF_ERROR(Cut(step, at.epoch, step - at.epoch_first_step, std::nullopt, at, now, &out));
  }
  return out;
}

Status CheckpointCoordinator::Cut(int64_t step, int cursor_epoch, int64_t steps_into_epoch,
                                  const std::optional<NextPhase>& then, const Position& at, Clock::TimePoint now,
                                  Actions* out) {
  CHECK(!pending_.has_value());
  // A cut at a step already committed (say, a stop right after a checkpoint)
  // is that checkpoint: writing it again would first remove the committed one.
  const std::string committed = run_dir_ + "/checkpoints/" + CheckpointName(step);
  if (FileExists(committed + "/MANIFEST")) {
    LOG(INFO) << "checkpoint at step " << step << " is committed already";
    if (stopping_) stop_note_ = "checkpoint " + committed + " committed";
    out->go_on = then;
    return OkStatus();
  }
  Pending p;
  p.step = step;
  p.epochs_done = cursor_epoch;
  p.steps_into_epoch = steps_into_epoch;
  // The reporting worker gives the digest at epoch ends only.
  p.params_sha256 =
      IsSynchronous(spec_) && steps_into_epoch == 0 && step == at.global_step ? at.digest : "";
  p.then = then;
  p.epoch = at.epoch;
  p.epoch_first_step = at.epoch_first_step;
  p.epoch_end_step = at.epoch_end_step;
  pending_ = std::move(p);
  last_cut_time_ = now;
  return Request(now, out);
}

Status CheckpointCoordinator::Request(Clock::TimePoint now, Actions* out) {
  Pending& p = *pending_;
  p.name = CheckpointName(p.step);
  p.dir = run_dir_ + "/checkpoints/" + p.name;
  p.snapshots = 0;
  p.parts.assign(servers_, std::nullopt);
  p.parts_done = 0;
  p.error.clear();
  p.start = now;
  p.loss_settled = p.taken = false;  // a moved cut needs the sums up to its new step
  p.loss_before_cut.reset();
  if (FileExists(p.dir)) {
    // Left by an attempt that never committed, or by a cut moved away from
    // this step: start it afresh.
    std::error_code ec;
    std::filesystem::remove_all(p.dir, ec);
  }
  RETURN_IF_ERROR(fs_->MakeDirs(p.dir));
  proto::Checkpoint request;
  request.set_dir(p.dir);
  request.set_step(p.step);
  out->request = request;
  return OkStatus();
}

StatusOr<CheckpointCoordinator::Actions> CheckpointCoordinator::Tick(const Position& at, Clock::TimePoint now) {
  Actions out;
  if (!pending_.has_value()) return out;
  const bool snapshotting = pending_->snapshots < servers_;
  const auto limit = snapshotting ? std::chrono::seconds(30) : std::chrono::seconds(600);
  if (now - pending_->start < limit) return out;
  LOG(ERROR) << "abandoning the checkpoint at step " << pending_->step << ": "
             << (snapshotting ? "snapshots" : "writes") << " overdue";
  const Pending p = std::move(*pending_);
  pending_.reset();
  // Its directory stays while a server may still write into it; the next
  // commit prunes it with every uncommitted one before it.
  out.lines.push_back(FailedLine(p, std::string(snapshotting ? "snapshots" : "writes") + " overdue"));
  if (p.epochs_done == spec_.epochs() && p.steps_into_epoch == 0) error_ = "the final checkpoint timed out";
  RETURN_IF_ERROR(TakeDeferred(at, now, &out));
  if (p.then.has_value()) {
    CHECK(!out.go_on.has_value()) << "two phases to go on with";
    out.go_on = p.then;
  }
  return out;
}

StatusOr<CheckpointCoordinator::Actions> CheckpointCoordinator::WorkerLostInEpoch(int rank, const Position& at,
                                                                                  Clock::TimePoint now) {
  Actions out;
  if (!pending_.has_value() || pending_->steps_into_epoch == 0 || !pending_->error.empty()) return out;
  // The cursor of a cut inside this epoch assumes the fixed data plan of all workers.
  LOG(WARNING) << "giving up the checkpoint at step " << pending_->step << ": a worker was lost inside its epoch";
  pending_->error = "worker " + std::to_string(rank) + " was lost inside the epoch of the cut";
  // It may have been waiting for that worker's loss sums only.
  RETURN_IF_ERROR(Advance(at, now, &out));
  return out;
}

StatusOr<CheckpointCoordinator::Actions> CheckpointCoordinator::WorkersReported(const Position& at,
                                                                               Clock::TimePoint now) {
  Actions out;
  if (pending_.has_value()) RETURN_IF_ERROR(Advance(at, now, &out));
  return out;
}

bool CheckpointCoordinator::LossSettled() {
  Pending& p = *pending_;
  if (p.steps_into_epoch == 0 || !p.error.empty() || p.loss_settled) return true;
  // Taken as soon as they are known: the ledger moves on to the next epoch
  // when this one ends, which may come before the last server's answer.
  const EpochLossLedger::SumsAt sums = losses_->At(p.epoch, p.step);
  if (sums.state == EpochLossLedger::State::kPending) return false;
  if (sums.state == EpochLossLedger::State::kKnown) {
    p.loss_before_cut = sums.ranks;
  } else {
    LOG(WARNING) << "checkpoint at step " << p.step << ": the workers' loss sums up to it are unknown; a job "
                 << "resumed from it reports the train_loss of epoch " << p.epoch + 1
                 << " over the steps after it only";
  }
  p.loss_settled = true;
  return true;
}

Status CheckpointCoordinator::Advance(const Position& at, Clock::TimePoint now, Actions* out) {
  Pending& p = *pending_;
  const bool settled = LossSettled();  // first: the sums are taken even while snapshots are missing
  if (p.snapshots < servers_ || !settled) return OkStatus();
  if (!p.taken) {
    p.taken = true;
    out->release_workers = stopping_;  // the stop's cut is taken: the workers may go
  }
  if (p.parts_done < servers_) return OkStatus();
  return Commit(at, now, out);
}

StatusOr<CheckpointCoordinator::Actions> CheckpointCoordinator::Snapshot(int server, const proto::CheckpointDone& ack,
                                                                         const Position& at, Clock::TimePoint now) {
  Actions out;
  if (!pending_.has_value() || ack.step() != pending_->step) return out;  // an abandoned cut
  Pending& p = *pending_;
  if (!ack.error().empty()) {
    if (ack.current_version() >= p.step && p.steps_into_epoch > 0 && p.retries < 5 &&
        ack.current_version() < p.epoch_end_step) {
      // A server was past the cut already: move it further ahead, within the
      // epoch the cut was made in (the cursor is relative to it), and ask again.
      const int64_t step = std::min(ack.current_version() + CutLead(at) * (2 << p.retries), p.epoch_end_step);
      ++p.retries;
      LOG(INFO) << "checkpoint: moving the cut from step " << p.step << " to " << step;
      p.step = step;
      if (step == p.epoch_end_step) {
        p.epochs_done = p.epoch + 1;
        p.steps_into_epoch = 0;
      } else {
        p.epochs_done = p.epoch;
        p.steps_into_epoch = step - p.epoch_first_step;
      }
      RETURN_IF_ERROR(Request(now, &out));
      return out;
    }
    p.error = "server " + std::to_string(server) + ": " + ack.error();
    // A refused snapshot writes nothing; count its part as done.
    p.parts[server] = ack;
    ++p.parts_done;
  }
  if (++p.snapshots < servers_) return out;
  LOG(INFO) << "checkpoint at step " << p.step << ": every server has its snapshot";
  const std::optional<NextPhase> then = p.then;
  p.then.reset();
  RETURN_IF_ERROR(Advance(at, now, &out));
  if (then.has_value()) {
    CHECK(!out.go_on.has_value()) << "two phases to go on with";
    out.go_on = then;
  }
  return out;
}

StatusOr<CheckpointCoordinator::Actions> CheckpointCoordinator::PartWritten(int server,
                                                                            const proto::CheckpointDone& done,
                                                                            const Position& at, Clock::TimePoint now) {
  Actions out;
  if (!pending_.has_value() || done.step() != pending_->step || pending_->parts[server].has_value()) {
    LOG(WARNING) << "dropped a CHECKPOINT_DONE for step " << done.step() << " from server " << server;
    return out;
  }
  Pending& p = *pending_;
  if (!done.error().empty() && p.error.empty()) {
    p.error = "server " + std::to_string(server) + ": " + done.error();
    if (done.error_code() == static_cast<int>(StatusCode::kResourceExhausted)) {
      p.error_code = StatusCode::kResourceExhausted;
    }
  }
  p.parts[server] = done;
  ++p.parts_done;
  RETURN_IF_ERROR(Advance(at, now, &out));
  return out;
}

Status CheckpointCoordinator::TakeDeferred(const Position& at, Clock::TimePoint now, Actions* out) {
  if (pending_.has_value()) return OkStatus();
  if (deferred_epoch_cut_.has_value()) {
    const DeferredEpochCut cut = *deferred_epoch_cut_;
    deferred_epoch_cut_.reset();
    return Cut(at.global_step, cut.epochs_done, 0, cut.then, at, now, out);
  }
  if (!deferred_final_) return OkStatus();
  deferred_final_ = false;
  return Cut(at.global_step, spec_.epochs(), 0, std::nullopt, at, now, out);
}

JsonObject CheckpointCoordinator::SkippedLine(int64_t due, const Position& at, const std::string& reason) {
  LOG(WARNING) << "checkpoint: the cut due at step " << due << " (every " << spec_.checkpoint().every_steps()
               << " steps) is skipped: " << reason;
  JsonObject line;
  line.Add("event", "checkpoint_skipped").Add("step", due).Add("epoch", at.epoch + 1).Add("reason", reason);
  return line;
}

JsonObject CheckpointCoordinator::FailedLine(const Pending& p, const std::string& reason) {
  JsonObject line;
  line.Add("event", "checkpoint_failed").Add("step", p.step).Add("epoch", p.epochs_done).Add("reason", reason);
  return line;
}

void CheckpointCoordinator::Discard(const Pending& p, const std::string& reason, Actions* out) {
  // Every server has answered, so nothing writes into the parts any more:
  // they go (the parts that were written would keep the disk full).
  std::error_code ec;
  std::filesystem::remove_all(p.dir, ec);
  if (ec) LOG(WARNING) << "could not delete the failed checkpoint " << p.dir << ": " << ec.message();
  out->lines.push_back(FailedLine(p, reason));
}

Status CheckpointCoordinator::Commit(const Position& at, Clock::TimePoint now, Actions* out) {
  RETURN_IF_ERROR(CommitPending(now, out));
  return TakeDeferred(at, now, out);
}

Status CheckpointCoordinator::CommitPending(Clock::TimePoint now, Actions* out) {
  const Pending p = std::move(*pending_);
  pending_.reset();
  const bool final = (p.epochs_done == spec_.epochs() && p.steps_into_epoch == 0) || stopping_;
  if (!p.error.empty()) {
    // The checkpoint never gets a manifest, so it does not exist; the previous one stays.
    LOG(ERROR) << "checkpoint at step " << p.step << " failed: " << p.error;
    if (final) {
      error_ = "the final checkpoint failed: " + p.error;
      error_code_ = p.error_code;
    }
    Discard(p, p.error, out);
    return OkStatus();
  }
  proto::CheckpointManifest m;
  *m.mutable_spec() = spec_;
  m.set_step(p.step);
  m.mutable_cursor()->set_seed(spec_.seed());
  m.mutable_cursor()->set_epoch(p.epochs_done);
  m.mutable_cursor()->set_steps_into_epoch(p.steps_into_epoch);
  for (const proto::TensorMeta& t : shape_->tensors) *m.add_tensors() = t;
  m.set_num_keys(shape_->num_keys);
  int64_t bytes = 0;
  double slowest = 0;
  for (size_t s = 0; s < p.parts.size(); ++s) {
    const proto::CheckpointDone& done = *p.parts[s];
    proto::ServerPart* part = m.add_servers();
    part->set_rank(static_cast<int>(s));
    part->set_dir(done.dir());
    for (const KeyRange& r : shape_->server_ranges[s]) {
      proto::KeyRange* range = part->add_ranges();
      range->set_begin(r.begin);
      range->set_end(r.end);
    }
    *part->mutable_files() = done.files();
    m.set_state_per_param(done.state_per_param());
    bytes += done.bytes();
    slowest = std::max(slowest, done.write_seconds());
  }
  m.set_params_sha256(p.params_sha256);
  m.set_optimizer(proto::OptimizerSpec::Type_Name(spec_.optimizer().type()));
  m.set_created_unix_seconds(static_cast<int64_t>(std::time(nullptr)));
  m.set_examples_per_epoch(shape_->train_examples);
  if (p.steps_into_epoch > 0 && p.loss_before_cut.has_value()) {
    for (const LossSums& sums : *p.loss_before_cut) {
      proto::RankLoss* rank = m.mutable_partial_epoch_loss()->add_by_rank();
      rank->set_loss_sum(sums.loss_sum);
      rank->set_examples(sums.examples);
    }
  }
  const Status written = WriteManifest(p.dir, m, fs_);
  if (!written.ok()) {
    LOG(ERROR) << "checkpoint at step " << p.step << " failed: " << written.ToString();
    if (final) {
      error_ = "the final checkpoint failed: " + written.message();
      if (written.code() == StatusCode::kResourceExhausted) error_code_ = written.code();
    }
    Discard(p, written.message(), out);
    return OkStatus();
  }
  const std::string checkpoints = p.dir.substr(0, p.dir.rfind('/'));
  RETURN_IF_ERROR(UpdateLatest(checkpoints, p.name, fs_));
  const Status pruned = PruneCheckpoints(checkpoints, spec_.checkpoint().keep_last(), keep_step_);
  if (!pruned.ok()) LOG(WARNING) << "could not delete old checkpoints: " << pruned.ToString();
  const double seconds = Seconds(now - p.start);
  JsonObject line;
  line.Add("event", "checkpoint")
      .Add("step", p.step)
      .Add("epoch", p.epochs_done)
      .Add("dir", p.dir)
      .Add("bytes", bytes)
      .Add("seconds", seconds)
      .Add("server_write_seconds", slowest);
  out->lines.push_back(line);
  LOG(INFO) << "checkpoint " << p.name << " committed: " << bytes << " bytes in " << seconds << " s";
  if (stopping_) stop_note_ = "checkpoint " + p.dir + " committed";
  return OkStatus();
}

}  // namespace tessera
