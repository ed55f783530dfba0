#include "server/server.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "models/model.h"
#include "core/consistency.h"
#include "core/file_util.h"
#include "core/sparse_frame.h"
#include "core/spec.h"

namespace tessera {

namespace {

// The tensors must tile [0, num_keys) exactly, and the job must have workers:
// the shard sizes its buffers from them.
Status ValidateTensors(const proto::ClusterMap& map) {
  if (map.num_workers() < 1) return InvalidArgumentError("cluster map has " + std::to_string(map.num_workers()) + " workers");
  uint64_t next = 0;
  for (const proto::TensorMeta& t : map.tensors()) {
    uint64_t product = 1;
    for (int64_t d : t.shape()) product *= static_cast<uint64_t>(d);
    if (t.offset() != next || t.size() == 0 || product != t.size()) {
      return InvalidArgumentError("cluster map tensor " + t.name() + " does not tile the key space");
    }
    next += t.size();
  }
  if (next != map.num_keys()) {
    return InvalidArgumentError("cluster map tensors hold " + std::to_string(next) + " keys, num_keys says " +
                                std::to_string(map.num_keys()));
  }
  return OkStatus();
}

// Writes each table's files into the part's directory `dir` (beside its
// RocksDB): incremental against `previous` (the part before, written by
// this server, when its write succeeded) when due; lists the files with
// their checksums in *result (a linked file's checksum is the one known for
// it, not read again) and in *written. result->bytes counts the bytes
// written, not the files linked.
Status WriteTableFiles(const std::string& dir, const std::vector<SparseTableSnapshot>& tables,
                       const std::string& previous_dir, const CheckpointTableFiles& previous, int full_every,
                       StoreWriteResult* result, CheckpointTableFiles* written) {
  for (const SparseTableSnapshot& table : tables) {
    ASSIGN_OR_RETURN(std::vector<SparseTableFileWritten> files,
                     WriteCheckpointSparseTable(dir, table, previous.ok ? previous_dir : "", full_every));
    for (const SparseTableFileWritten& f : files) {
      proto::FileChecksum file;
      const auto known = previous.by_path.find(f.linked_from);
      if (!f.linked_from.empty() && known != previous.by_path.end()) {
        file = known->second;
      } else {
        uint64_t size = 0;
        ASSIGN_OR_RETURN(std::string sha256, Sha256OfFile(dir + "/" + f.name, &size));
        file.set_size(size);
        file.set_sha256(sha256);
      }
      file.set_name(f.name);
      result->files.push_back(file);
      if (f.linked_from.empty()) result->bytes += static_cast<int64_t>(file.size());
      written->by_path[dir + "/" + f.name] = file;
    }
  }
  if (!tables.empty()) RETURN_IF_ERROR(SyncDirectory(dir));
  written->ok = true;
  return OkStatus();
}

}  // namespace

Status Server::Run() {
  ASSIGN_OR_RETURN(std::string scheduler_endpoint, NormalizeEndpoint(options_.scheduler));
  scheduler_endpoint_ = scheduler_endpoint;
  ASSIGN_OR_RETURN(workers_, transport_->Bind(SocketKind::kRouter,
                                              "tcp://" + options_.host + ":" + std::to_string(options_.port)));
  ASSIGN_OR_RETURN(scheduler_, transport_->Connect(SocketKind::kDealer, scheduler_endpoint,
                                                   {.server_public_key = options_.scheduler_public_key}));
  LOG(INFO) << "server listening on " << workers_->endpoint() << ", scheduler " << scheduler_endpoint;

  RETURN_IF_ERROR(Register());
  std::vector<Socket*> sockets = {scheduler_.get(), workers_.get()};
  while (!shutdown_) {
    if (stop_->load()) return AbortedError("stopped by signal");
    if (!fatal_.ok()) {
      RETURN_IF_ERROR(FinishWrites(/*wait=*/true));
      return fatal_;
    }
    if (heartbeat_ != nullptr && heartbeat_->lost()) {
      RETURN_IF_ERROR(FinishWrites(/*wait=*/true).WithContext("finishing checkpoint writes"));
      return UnavailableError("lost the scheduler at " + scheduler_endpoint_ + ": no answer to heartbeats");
    }
    if (shard_ == nullptr && std::chrono::steady_clock::now() > map_deadline_) {
      return UnavailableError("no cluster map from the scheduler at " + scheduler_endpoint + " within " +
                              std::to_string(options_.register_timeout_s) + " s");
    }
    RETURN_IF_ERROR(FinishWrites(/*wait=*/false));
    if (spares_.valid() && spares_.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
      shard_->AdoptSpares(spares_.get());
    }
    std::vector<bool> ready = transport_->Poll(sockets, writes_.empty() ? 200 : 5);
    if (ready[0]) {
      auto m = scheduler_->Receive(0);
      if (m.ok()) {
        RETURN_IF_ERROR(HandleScheduler(std::move(m).value()));
      } else if (m.status().code() != StatusCode::kDeadlineExceeded) {
        drops_.Drop("dropped a malformed message from the scheduler: " + m.status().ToString());
      }
    }
    if (ready[1]) {
      // Drain what is queued, so one busy socket does not starve the other.
      for (int i = 0; i < 64; ++i) {
        auto m = workers_->Receive(0);
        if (!m.ok()) {
          if (m.status().code() == StatusCode::kDeadlineExceeded) break;
          drops_.Drop("dropped a malformed message: " + m.status().ToString());
          continue;
        }
        HandleWorker(std::move(m).value());
      }
    }
  }
  // A checkpoint part still being written is finished, never left half done.
  RETURN_IF_ERROR(FinishWrites(/*wait=*/true));
  if (!shutdown_reason_.empty()) return AbortedError("scheduler ended the job: " + shutdown_reason_);
  LOG(INFO) << "server " << rank_ << " shutting down at version " << (shard_ ? shard_->version() : 0);
  for (int t = 0; tables_ != nullptr && t < tables_->size(); ++t) {
    const SparseRowStoreCounts c = tables_->table(t).counts();
    LOG(INFO) << "sparse table '" << tables_->table(t).name() << "': " << c.rows << " rows (" << c.rows_in_memory
              << " in memory), " << c.evictions << " evictions, " << c.reloads << " reloads, " << c.rows_expired
              << " expired, " << c.sightings_filtered << " sightings not admitted";
  }
  return OkStatus();
}

Status Server::Register() {
  proto::Header reg;
  reg.set_op(proto::REGISTER);
  reg.set_sender_role(proto::SERVER);
  reg.mutable_register_()->set_role(proto::SERVER);
  reg.mutable_register_()->set_address(workers_->endpoint());
  reg.mutable_register_()->set_pid(getpid());
  if (!options_.cluster_token.empty()) reg.mutable_register_()->set_token(options_.cluster_token);
  if (!options_.curve_public_key.empty()) reg.mutable_register_()->set_curve_public_key(options_.curve_public_key);
  map_deadline_ = std::chrono::steady_clock::now() + std::chrono::seconds(options_.register_timeout_s);
  return scheduler_->Send(reg);
}

Status Server::RollBack(const std::string& reason) {
  LOG(WARNING) << "the job rolls back: " << reason << "; registering again";
  // A part being written is finished first (the scheduler has given up on
  // it), so no write of this cluster outlives it.
  RETURN_IF_ERROR(FinishWrites(/*wait=*/true));
  if (spares_.valid()) spares_.get();  // made for the shard about to go
  heartbeat_.reset();
  shard_.reset();
  tables_.reset();
  optimizer_.reset();
  waiting_.clear();
  armed_.reset();
  job_id_ = 0;
  rank_ = -1;
  rolled_back_ = true;
  return Register();
}

Status Server::HandleScheduler(Message m) {
  switch (m.header.op()) {
    case proto::CLUSTER_MAP: {
      if (shard_ != nullptr) {
        LOG(WARNING) << "ignoring a second cluster map";
        return OkStatus();
      }
      const proto::ClusterMap& map = m.header.cluster_map();
      rank_ = map.rank();
      job_id_ = m.header.job_id();
      if (rank_ < 0 || rank_ >= map.servers_size()) {
        return InvalidArgumentError("cluster map gives server rank " + std::to_string(rank_) + " of " +
                                    std::to_string(map.servers_size()));
      }
      std::vector<KeyRange> ranges;
      for (const proto::KeyRange& r : map.servers(rank_).ranges()) ranges.push_back({r.begin(), r.end()});
      RETURN_IF_ERROR(ValidateRanges(ranges, map.num_keys()));
      RETURN_IF_ERROR(ValidateTensors(map));
      RETURN_IF_ERROR(ValidateJobSpec(map.spec()));
      // The tensors (offsets, sizes, init bounds) come with the map.
      const ScheduleClock clock{map.steps_per_epoch(), map.spec().epochs(), map.schedule_step_offset()};
      ASSIGN_OR_RETURN(optimizer_, CreateOptimizer(map.spec().optimizer(), clock));
      LOG(INFO) << "learning rate: " << optimizer_->schedule().ToString();
      std::vector<TensorInfo> tensors;
      for (const proto::TensorMeta& t : map.tensors()) {
        TensorInfo info;
        info.name = t.name();
        info.shape.assign(t.shape().begin(), t.shape().end());
        info.offset = t.offset();
        info.size = t.size();
        info.init_bound = t.init_bound();
        info.init_value = t.init_value();
        info.trainable = t.trainable();
        tensors.push_back(info);
      }
      shard_ = std::make_unique<KvShard>(std::move(ranges), tensors, map.spec().seed(), optimizer_.get(),
                                         map.spec().consistency(), map.num_workers(),
                                         map.spec().optimizer().freeze_zero_weights(),
                                         static_cast<int>(StalenessBound(map.spec())));
      ASSIGN_OR_RETURN(tables_, SparseTables::Create(map, rank_, map.has_restore() ? map.restore().step() : 0,
                                                     options_.spill_dir, options_.test_spill_writes_before_full));
      asp_ = !IsSynchronous(map.spec());
      staleness_ = StalenessBound(map.spec());
      sparse_full_every_ = map.spec().checkpoint().sparse_full_every();
      previous_table_files_ = PreviousTableFiles();  // a fresh start's first files are full
      if (map.has_restore()) RETURN_IF_ERROR(RestoreFrom(map.restore()));
      if (map.spec().checkpoint().enabled()) {
        // The first step after the first snapshot would fault them in.
        spares_ = std::async(std::launch::async, &KvShard::MakeSpares, shard_->SpareSizes());
      }
      LOG(INFO) << "server rank " << rank_ << " owns " << shard_->ranges().size() << " key ranges, "
                << shard_->num_keys() << " keys (" << shard_->num_keys() * 4 / 1024 << " KiB)";
      heartbeat_ = std::make_unique<HeartbeatSender>(
          transport_, scheduler_endpoint_, options_.scheduler_public_key, proto::SERVER, rank_, job_id_,
          map.spec().cluster().heartbeat_interval_ms(), map.spec().cluster().heartbeat_timeout_ms());
      proto::Header ready;
      ready.set_op(proto::SERVER_READY);
      ready.set_job_id(job_id_);
      ready.set_sender_role(proto::SERVER);
      ready.set_sender_rank(rank_);
      return scheduler_->Send(ready);
    }
    case proto::CHECKPOINT:
      StartCheckpoint(m.header.checkpoint());
      return OkStatus();
    case proto::MEMBERSHIP:
      return ChangeMembership(m.header.membership());
    case proto::SHUTDOWN:
      shutdown_ = true;
      shutdown_reason_ = m.header.shutdown().reason();
      return OkStatus();
    case proto::ROLLBACK:
      return RollBack(m.header.rollback().reason());
    default:
      LOG(WARNING) << "ignoring op " << proto::Op_Name(m.header.op()) << " from the scheduler";
      return OkStatus();
  }
}

void Server::HandleWorker(Message m) {
  const proto::Header& h = m.header;
  if (shard_ == nullptr) {
    // After a rollback, requests of the abandoned cluster are dropped: its
    // workers are told to roll back by the scheduler, not failed by an error.
    if (rolled_back_) return;
    ReplyError(m.peer, "server not initialized yet");
    return;
  }
  if (h.job_id() != job_id_) {
    drops_.Drop("dropped " + proto::Op_Name(h.op()) + " for job " + std::to_string(h.job_id()) + ", this job is " +
                std::to_string(job_id_));
    return;
  }
  switch (h.op()) {
    case proto::PUSH: {
      const std::vector<KeyRange> ranges = RangesOf(h);
      // Sparse frames stay sparse until the shard has checked the rank and
      // the ranges: it makes them dense into the slices' own memory.
      auto done =
          shard_->AddPush(h.sender_rank(), h.step(), h.examples(), ranges, std::move(m.frames), SparseRangesOf(h));
      if (!done.ok()) {
        drops_.Drop("dropped a push: " + done.status().ToString());
        ReplyError(m.peer, done.status().message());
        return;
      }
      if (h.want_params()) {
        // The worker's next step, h.step() + 1, may train on parameters
        // staleness_ steps older (SSP; BSP: none older).
        const int64_t version = std::max<int64_t>(0, h.step() + 1 - staleness_);
        Waiting w{m.peer, shard_->FindSlices(ranges).value(), version, {}};
        if (!*done && shard_->MinVersion(w.slices) >= version) {
          // SSP: a push held ahead of its slices' version, which is recent
          // enough already (a push that applied a step is answered below).
          ReplyParams(w);
        } else {
          waiting_.push_back(std::move(w));
        }
      } else {
        proto::Header ack;
        ack.set_op(proto::PUSH_ACK);
        ack.set_job_id(job_id_);
        ack.set_sender_role(proto::SERVER);
        ack.set_sender_rank(rank_);
        ack.set_step(shard_->version());
        workers_->Send(ack, {}, m.peer).IgnoreError();  // a vanished worker is the scheduler's concern
      }
      if (*done) {
        MaybeStartWrite();  // the push may have completed an armed cut
        AnswerWaiting();
      }
      return;
    }
    case proto::PULL: {
      // No ranges: all of this server's slices. Otherwise sparse ranges
      // (DecodeMessage checked their run lists): only those rows of them.
      auto slices = shard_->FindSlices(RangesOf(h));
      if (!slices.ok()) {
        drops_.Drop("dropped a pull: " + slices.status().ToString());
        ReplyError(m.peer, slices.status().message());
        return;
      }
      Waiting w{m.peer, std::move(slices).value(), h.step(), {}};
      for (int i = 0; i < h.ranges_size(); ++i) {
        auto runs = ParseRunList(m.frames[i], h.ranges(i).end() - h.ranges(i).begin());
        if (!runs.ok()) {  // not reached: DecodeMessage checked them
          ReplyError(m.peer, runs.status().message());
          return;
        }
        w.runs.push_back(std::move(runs).value());
      }
      waiting_.push_back(std::move(w));
      AnswerWaiting();
      return;
    }
    case proto::SPARSE_PUSH:
    case proto::SPARSE_PULL:
      HandleSparse(std::move(m));
      return;
    default:
      drops_.Drop("dropped op " + proto::Op_Name(h.op()) + " on the data port");
  }
}

void Server::HandleSparse(Message m) {
  const std::string peer = m.peer;
  const proto::Op op = m.header.op();
  auto reply = [this](const std::string& to, const proto::Header& header, std::vector<OutFrame> frames) {
    SendToWorker(to, header, std::move(frames));
  };
  Status done = OkStatus();
  bool applied = false;
  if (op == proto::SPARSE_PUSH) {
    auto pushed = tables_->Push(m);
    done = pushed.status();
    applied = pushed.ok() && *pushed;
  } else {
    done = tables_->Pull(std::move(m), reply);
  }
  if (done.code() == StatusCode::kInvalidArgument) {
    drops_.Drop("dropped a " + proto::Op_Name(op) + ": " + done.ToString());
    ReplyError(peer, done.message());
    return;
  }
  if (done.ok() && applied) {
    done = tables_->Capture();  // the step may have brought a table to an armed cut
    if (done.ok()) MaybeStartWrite();
    if (done.ok()) done = tables_->AnswerWaiting(reply);
  }
  if (!done.ok()) fatal_ = done.WithContext("sparse tables");
}

void Server::SendToWorker(const std::string& peer, proto::Header header, std::vector<OutFrame> frames) {
  header.set_job_id(job_id_);
  header.set_sender_role(proto::SERVER);
  header.set_sender_rank(rank_);
  Status s = workers_->Send(header, frames, peer);
  if (!s.ok()) LOG(WARNING) << "could not answer a worker: " << s.ToString();
}

Status Server::ChangeMembership(const proto::Membership& membership) {
  if (shard_ == nullptr) {
    LOG(WARNING) << "ignoring a membership before the cluster map";
    return OkStatus();
  }
  if (membership.has_schedule_step_offset() && optimizer_ != nullptr) {
    optimizer_->set_schedule_step_offset(membership.schedule_step_offset());
    LOG(INFO) << "learning-rate schedule re-anchored at version " << shard_->version()
              << ": step offset " << membership.schedule_step_offset();
  }
  const std::vector<int> ranks(membership.active().begin(), membership.active().end());
  std::vector<KvShard::Reach> left;
  auto applied = shard_->SetActive(ranks, &left);
  if (!applied.ok()) {
    LOG(WARNING) << "ignoring a membership: " << applied.status().ToString();
    return OkStatus();
  }
  ASSIGN_OR_RETURN(const bool sparse_applied, tables_->SetActive(ranks));
  RETURN_IF_ERROR(tables_->Capture());
  proto::Header ack;
  ack.set_op(proto::MEMBERSHIP_ACK);
  ack.set_job_id(job_id_);
  ack.set_sender_role(proto::SERVER);
  ack.set_sender_rank(rank_);
  ack.mutable_membership_ack()->set_seq(membership.seq());
  for (const KvShard::Reach& r : left) {
    proto::RankReach* out = ack.mutable_membership_ack()->add_left();
    out->set_rank(r.rank);
    out->set_min_step(r.min_step);
    out->set_max_step(r.max_step);
    out->set_has_slices(!shard_->ranges().empty());
    LOG(INFO) << "worker " << r.rank << " left: its pushes reached steps " << r.min_step << " to " << r.max_step
              << " of this server's slices";
  }
  LOG(INFO) << "membership " << membership.seq() << ": " << ranks.size() << " workers take part";
  if (membership.has_advance_to_step()) {
    // Every worker of the last part was lost: the next starts at this step on every slice.
    auto moved = shard_->AdvanceTo(membership.advance_to_step());
    if (!moved.ok()) return moved.status();
    if (*moved) LOG(INFO) << "slices below version " << membership.advance_to_step() << " move up to it";
    RETURN_IF_ERROR(tables_->AdvanceTo(membership.advance_to_step()));
    *applied = *applied || *moved;
  }
  if (*applied || sparse_applied) {
    MaybeStartWrite();  // a step applied now may complete an armed cut
    AnswerWaiting();
  }
  if (*applied || sparse_applied || membership.has_advance_to_step()) {
    RETURN_IF_ERROR(tables_->AnswerWaiting([this](const std::string& to, const proto::Header& header,
                                                  std::vector<OutFrame> frames) {
      SendToWorker(to, header, std::move(frames));
    }));
  }
  return scheduler_->Send(ack);
}

Status Server::RestoreFrom(const proto::Restore& restore) {
  std::vector<SliceRecord> records;
  const std::vector<KeyRange>& mine = shard_->ranges();
  for (const proto::RestorePart& part : restore.parts()) {
    // Only the parts holding some of this server's keys are read.
    bool overlaps = false;
    for (const proto::KeyRange& r : part.ranges()) {
      for (const KeyRange& m : mine) overlaps = overlaps || (r.begin() < m.end && m.begin < r.end());
    }
    if (!overlaps) continue;
    const std::string dir = restore.dir() + "/" + part.dir();
    ASSIGN_OR_RETURN(std::vector<SliceRecord> part_records, ReadSliceStore(dir));
    for (SliceRecord& r : part_records) {
      if (r.version != restore.step()) {
        return DataLossError(dir + " holds a slice at step " + std::to_string(r.version) + ", the manifest says " +
                             std::to_string(restore.step()));
      }
      records.push_back(std::move(r));
    }
  }
  RETURN_IF_ERROR(shard_->Restore(records, restore.step()).WithContext("restoring from " + restore.dir()));
  RETURN_IF_ERROR(tables_->Restore(restore).WithContext("restoring the sparse tables from " + restore.dir()));
  LOG(INFO) << "server " << rank_ << " restored " << shard_->num_keys() << " keys at step " << restore.step()
            << " from " << restore.dir();
  return OkStatus();
}

void Server::StartCheckpoint(const proto::Checkpoint& request) {
  auto refuse = [&](const std::string& error) {
    LOG(WARNING) << "refused checkpoint at step " << request.step() << ": " << error;
    proto::Header h;
    h.set_op(proto::CHECKPOINT_SNAPSHOT);
    h.set_job_id(job_id_);
    h.set_sender_role(proto::SERVER);
    h.set_sender_rank(rank_);
    h.mutable_checkpoint_done()->set_step(request.step());
    h.mutable_checkpoint_done()->set_error(error);
    if (shard_ != nullptr) h.mutable_checkpoint_done()->set_current_version(shard_->MaxVersion());
    scheduler_->Send(h).IgnoreError();  // if this is lost, the scheduler abandons the checkpoint after a timeout
  };
  if (shard_ == nullptr) return refuse("not initialized");
  if (request.dir().empty() || request.dir()[0] != '/') return refuse("the checkpoint directory must be absolute");
  // Arming replaces a cut the scheduler gave up on (it moved the step).
  if (Status armed = shard_->ArmSnapshot(request.step()); !armed.ok()) return refuse(armed.message());
  if (Status armed = tables_->ArmCut(request.step(), asp_); !armed.ok()) {
    if (armed.code() != StatusCode::kFailedPrecondition) fatal_ = armed;  // a row store failed
    return refuse(armed.message());
  }
  armed_ = request;
  MaybeStartWrite();
}

void Server::MaybeStartWrite() {
  if (!armed_.has_value() || !shard_->SnapshotReady() || !tables_->CutReady()) return;
  PendingWrite w;
  w.step = armed_->step();
  w.dir_name = "server-" + std::to_string(rank_);
  w.start = std::chrono::steady_clock::now();
  const std::string dir = armed_->dir() + "/" + w.dir_name;
  const int per = optimizer_->state_per_param();
  // The parameters are shared with the shard (copy-on-write keeps them as
  // they were); the write runs beside training.
  // The table files go after the previous part's (their chain links to
  // them); this part's are the next one's base.
  auto tables_written = std::make_shared<std::promise<CheckpointTableFiles>>();
  PreviousTableFiles previous = std::exchange(previous_table_files_, {dir, tables_written->get_future().share()});
  w.result = std::async(std::launch::async, [dir, per, delay = options_.checkpoint_report_delay,
                                             snapshot = shard_->TakeSnapshot(), tables = tables_->TakeCut(),
                                             previous, tables_written, full_every = sparse_full_every_]() {
    CheckpointTableFiles files;  // ok stays false unless every table file is written
    const Status made = MakeDirs(dir.substr(0, dir.rfind('/')));
    StatusOr<StoreWriteResult> written =
        made.ok() ? WriteSliceStore(dir, snapshot, per) : StatusOr<StoreWriteResult>(made);
    if (written.ok()) {
      const CheckpointTableFiles before = previous.written.valid() ? previous.written.get() : CheckpointTableFiles();
      Status tables_done = WriteTableFiles(dir, tables, previous.part_dir, before, full_every, &*written, &files);
      if (!tables_done.ok()) written = tables_done;
    }
    tables_written->set_value(std::move(files));
    std::this_thread::sleep_for(delay);
    return written;
  });
  armed_.reset();
  proto::Header h;
  h.set_op(proto::CHECKPOINT_SNAPSHOT);
  h.set_job_id(job_id_);
  h.set_sender_role(proto::SERVER);
  h.set_sender_rank(rank_);
  h.mutable_checkpoint_done()->set_step(w.step);
  writes_.push_back(std::move(w));
  scheduler_->Send(h).IgnoreError();  // if this is lost, the scheduler abandons the checkpoint after a timeout
}

Status Server::FinishWrites(bool wait) {
  std::vector<PendingWrite> still;
  for (PendingWrite& w : writes_) {
    if (!wait && w.result.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
      still.push_back(std::move(w));
      continue;
    }
    StatusOr<StoreWriteResult> written = w.result.get();
    proto::Header h;
    h.set_op(proto::CHECKPOINT_DONE);
    h.set_job_id(job_id_);
    h.set_sender_role(proto::SERVER);
    h.set_sender_rank(rank_);
    proto::CheckpointDone* done = h.mutable_checkpoint_done();
    done->set_step(w.step);
    done->set_dir(w.dir_name);
    done->set_state_per_param(optimizer_->state_per_param());
    done->set_write_seconds(std::chrono::duration<double>(std::chrono::steady_clock::now() - w.start).count());
    for (int t = 0; tables_ != nullptr && t < tables_->size(); ++t) {
      const SparseRowStoreCounts c = tables_->table(t).counts();
      proto::SparseTableCounts* counts = h.add_sparse_table_counts();
      counts->set_table(t);
      counts->set_refused(c.sightings_filtered);
      counts->set_admitted(c.rows_created - c.rows_restored);
      counts->set_expired(c.rows_expired);
    }
    if (written.ok()) {
      for (const proto::FileChecksum& f : written->files) *done->add_files() = f;
      done->set_bytes(written->bytes);
      LOG(INFO) << "checkpoint part at step " << w.step << " written: " << written->bytes << " bytes in "
                << done->write_seconds() << " s";
    } else {
      done->set_error(written.status().ToString());
      done->set_error_code(static_cast<int>(written.status().code()));
      LOG(ERROR) << "checkpoint at step " << w.step << " failed: " << written.status().ToString();
    }
    RETURN_IF_ERROR(scheduler_->Send(h));
  }
  writes_ = std::move(still);
  return OkStatus();
}

void Server::AnswerWaiting() {
  std::vector<Waiting> still;
  for (Waiting& w : waiting_) {
    if (shard_->MinVersion(w.slices) >= w.version) {
      ReplyParams(w);
    } else {
      still.push_back(std::move(w));
    }
  }
  waiting_ = std::move(still);
}

void Server::ReplyParams(const Waiting& w) {
  proto::Header h;
  h.set_op(proto::PARAMS);
  h.set_job_id(job_id_);
  h.set_sender_role(proto::SERVER);
  h.set_sender_rank(rank_);
  h.set_step(shard_->MinVersion(w.slices));
  if (w.slices.empty()) {
    SetRanges(shard_->ranges(), &h);
  } else {
    for (int i : w.slices) {
      proto::KeyRange* r = h.add_ranges();
      r->set_begin(shard_->ranges()[i].begin);
      r->set_end(shard_->ranges()[i].end);
      if (!w.runs.empty()) r->set_sparse(true);
    }
  }
  std::vector<OutFrame> frames = shard_->ParamFrames(w.slices);
  // A sparse pull: only the rows asked for, copied out of the slices.
  for (size_t i = 0; i < w.runs.size(); ++i) {
    auto rows = std::make_shared<const std::string>(
        EncodeSparseFrame(static_cast<const float*>(frames[i].data), w.runs[i]));
    frames[i] = {rows->data(), rows->size(), rows};
  }
  Status s = workers_->Send(h, frames, w.peer);
  if (!s.ok()) LOG(WARNING) << "could not answer a worker: " << s.ToString();
}

void Server::ReplyError(const std::string& peer, const std::string& message) {
  proto::Header h;
  h.set_op(proto::ERROR);
  h.set_job_id(job_id_);
  h.set_sender_role(proto::SERVER);
  h.set_sender_rank(rank_);
  h.mutable_error()->set_message(message);
  workers_->Send(h, {}, peer).IgnoreError();  // best effort: the peer may be a stray
}

}  // namespace tessera
