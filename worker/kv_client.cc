#include "worker/kv_client.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "core/sparse_frame.h"

namespace tessera {

Status KvClient::Connect() {
  for (const ServerEndpoint& s : servers_) {
    ASSIGN_OR_RETURN(auto socket,
                     transport_->Connect(SocketKind::kDealer, s.address, {.server_public_key = s.public_key}));
    sockets_.push_back(std::move(socket));
    // Consecutive slices grouped into parts of about kPartBytes: one message each.
    parts_.push_back(GroupSlices(s.ranges, KeyRange{0, UINT64_MAX}));
  }
  expected_acks_.assign(servers_.size(), 0);
  return OkStatus();
}

Status KvClient::Push(int64_t step, int64_t examples, const std::shared_ptr<std::vector<float>>& grads,
                      bool want_params) {
  return SendParts(step, examples, grads, parts_, want_params);
}

Status KvClient::PushKeys(int64_t step, int64_t examples, const std::shared_ptr<std::vector<float>>& grads,
                          KeyRange keys, bool want_params) {
  std::vector<std::vector<std::vector<int>>> parts;
  for (const ServerEndpoint& s : servers_) parts.push_back(GroupSlices(s.ranges, keys));
  return SendParts(step, examples, grads, parts, want_params);
}

std::vector<std::vector<int>> KvClient::GroupSlices(const std::vector<KeyRange>& slices, KeyRange keys) const {
  std::vector<std::vector<int>> parts;
  uint64_t bytes = kPartBytes;
  bool part_sparse = false;
  for (size_t i = 0; i < slices.size(); ++i) {
    if (slices[i].begin < keys.begin || slices[i].end > keys.end) continue;
    // A part is all sparse-tensor slices or none, so that with sparse pulls
    // it either wants its parameters back or not.
    const bool sparse = InSparseTensor(slices[i]);
    if (bytes >= kPartBytes || sparse != part_sparse) {
      parts.emplace_back();
      bytes = 0;
      part_sparse = sparse;
    }
    parts.back().push_back(static_cast<int>(i));
    bytes += slices[i].size() * sizeof(float);
  }
  return parts;
}

bool KvClient::InSparseTensor(const KeyRange& r) const {
  return std::any_of(sparse_tensors_.begin(), sparse_tensors_.end(),
                     [&](const KeyRange& t) { return t.begin <= r.begin && r.end <= t.end; });
}

Status KvClient::SendParts(int64_t step, int64_t examples, const std::shared_ptr<std::vector<float>>& grads,
                           const std::vector<std::vector<std::vector<int>>>& parts, bool want_params) {
  // Round-robin over servers, part by part, so every server starts applying early.
  size_t most_parts = 0;
  for (const auto& p : parts) most_parts = std::max(most_parts, p.size());
  for (size_t part = 0; part < most_parts; ++part) {
    for (size_t s = 0; s < servers_.size(); ++s) {
      if (part >= parts[s].size()) continue;
      proto::Header h = Request(proto::PUSH, step);
      h.set_examples(examples);
      // With sparse pulls a sparse tensor's rows come back through PullRows.
      const bool part_wants_params =
          want_params && !(sparse_pulls_ && InSparseTensor(servers_[s].ranges[parts[s][part].front()]));
      h.set_want_params(part_wants_params);
      std::vector<OutFrame> frames;
      for (int i : parts[s][part]) {
        const KeyRange& r = servers_[s].ranges[i];
        proto::KeyRange* out = h.add_ranges();
        out->set_begin(r.begin);
        out->set_end(r.end);
        bool sparse = false;
        frames.push_back(GradientFrame(r, grads, &sparse));
        if (sparse) out->set_sparse(true);
        pushed_bytes_ += frames.back().size;
      }
      RETURN_IF_ERROR(sockets_[s]->Send(h, frames));
      if (!part_wants_params) ++expected_acks_[s];
    }
  }
  return OkStatus();
}

OutFrame KvClient::GradientFrame(const KeyRange& r, const std::shared_ptr<std::vector<float>>& grads,
                                 bool* sparse) const {
  const OutFrame dense{grads->data() + r.begin, r.size() * sizeof(float), grads};
  if (!InSparseTensor(r) || touched_ == nullptr) return dense;
  const std::vector<KeyRange> runs = RunsInside(*touched_, r);
  if (SparseFrameBytes(runs) >= dense.size) return dense;
  auto frame = std::make_shared<const std::string>(EncodeSparseFrame(grads->data() + r.begin, runs));
  *sparse = true;
  return {frame->data(), frame->size(), frame};
}

proto::Header KvClient::Request(proto::Op op, int64_t step) const {
  proto::Header h;
  h.set_op(op);
  h.set_job_id(job_id_);
  h.set_sender_role(proto::WORKER);
  h.set_sender_rank(rank_);
  h.set_step(step);
  return h;
}

Status KvClient::Pull(int64_t step) {
  for (size_t s = 0; s < servers_.size(); ++s) {
    RETURN_IF_ERROR(sockets_[s]->Send(Request(proto::PULL, step)));  // no ranges: all of the server's slices
  }
  return OkStatus();
}

std::vector<KeyRange> KvClient::RunsInside(const std::vector<KeyRange>& runs, const KeyRange& r) {
  std::vector<KeyRange> inside;
  auto it = std::lower_bound(runs.begin(), runs.end(), r.begin,
                             [](const KeyRange& run, uint64_t key) { return run.end <= key; });
  for (; it != runs.end() && it->begin < r.end; ++it) {
    inside.push_back({std::max(it->begin, r.begin) - r.begin, std::min(it->end, r.end) - r.begin});
  }
  return inside;
}

Status KvClient::PullRows(int64_t version, const std::vector<KeyRange>& rows) {
  for (size_t s = 0; s < servers_.size(); ++s) {
    proto::Header h = Request(proto::PULL, version);
    std::vector<OutFrame> frames;
    for (const KeyRange& slice : servers_[s].ranges) {
      if (!InSparseTensor(slice)) continue;
      proto::KeyRange* out = h.add_ranges();
      out->set_begin(slice.begin);
      out->set_end(slice.end);
      out->set_sparse(true);
      auto list = std::make_shared<const std::string>(EncodeRunList(RunsInside(rows, slice)));
      frames.push_back({list->data(), list->size(), list});
    }
    if (frames.empty()) continue;  // no rows of a sparse tensor here
    RETURN_IF_ERROR(sockets_[s]->Send(h, frames));
  }
  return OkStatus();
}

Status KvClient::WaitParams(float* params, int timeout_ms, int64_t* version, int64_t min_version,
                            const SliceWritten& on_slice) {
  return WaitAll(proto::PARAMS, params, timeout_ms, version, min_version, on_slice);
}

Status KvClient::WaitAcks(int timeout_ms) {
  return WaitAll(proto::PUSH_ACK, nullptr, timeout_ms, nullptr, 0, nullptr);
}

int KvClient::FindSlice(int server, const proto::KeyRange& range) const {
  const std::vector<KeyRange>& slices = servers_[server].ranges;
  auto it = std::lower_bound(slices.begin(), slices.end(), range.begin(),
                             [](const KeyRange& s, uint64_t begin) { return s.begin < begin; });
  if (it == slices.end() || it->begin != range.begin() || it->end != range.end()) return -1;
  return static_cast<int>(it - slices.begin());
}

Status KvClient::WaitAll(proto::Op op, float* params, int timeout_ms, int64_t* version, int64_t min_version,
                         const SliceWritten& on_slice) {
  // What is still owed by each server: PARAMS for every slice, or acks.
  std::vector<std::vector<bool>> received(servers_.size());
  std::vector<size_t> owed(servers_.size());
  for (size_t s = 0; s < servers_.size(); ++s) {
    if (op == proto::PARAMS) {
      received[s].assign(servers_[s].ranges.size(), false);
      owed[s] = servers_[s].ranges.size();
    } else {
      owed[s] = expected_acks_[s];
    }
  }
  int64_t lowest = INT64_MAX;
  // Poll in short slices so a stop request (or a signal's EINTR) is noticed.
  constexpr int kSliceMs = 200;
  auto last_progress = std::chrono::steady_clock::now();
  while (true) {
    std::vector<Socket*> pending;
    std::vector<int> index;
    for (size_t s = 0; s < servers_.size(); ++s) {
      if (owed[s] == 0) continue;
      pending.push_back(sockets_[s].get());
      index.push_back(static_cast<int>(s));
    }
    if (pending.empty()) break;
    if (stop_ != nullptr && stop_->load()) return AbortedError("stopped by signal");
    if (lost_ != nullptr && lost_->load()) return UnavailableError("lost the scheduler: no answer to heartbeats");
    if (interrupt_ != nullptr) pending.push_back(interrupt_);
    std::vector<bool> ready = transport_->Poll(pending, std::min(kSliceMs, timeout_ms));
    if (interrupt_ != nullptr) {
      if (ready.back() && on_interrupt_()) return AbortedError("interrupted by the scheduler");
      ready.pop_back();
      pending.pop_back();
    }
    if (std::none_of(ready.begin(), ready.end(), [](bool b) { return b; })) {
      if (std::chrono::steady_clock::now() - last_progress < std::chrono::milliseconds(timeout_ms)) continue;
      return DeadlineExceededError("no answer from " + std::to_string(pending.size()) + " of " +
                                   std::to_string(sockets_.size()) + " servers within " + std::to_string(timeout_ms) +
                                   " ms");
    }
    for (size_t i = 0; i < ready.size(); ++i) {
      if (!ready[i]) continue;
      const int s = index[i];
      last_progress = std::chrono::steady_clock::now();
      // Drain what this server has queued.
      while (owed[s] > 0) {
        auto m = sockets_[s]->Receive(0);
        if (!m.ok()) {
          if (m.status().code() == StatusCode::kDeadlineExceeded) break;
          drops_.Drop("dropped a malformed reply from server " + std::to_string(s) + ": " + m.status().ToString());
          continue;
        }
        const proto::Header& h = m->header;
        if (h.job_id() != job_id_) {
          drops_.Drop("dropped a reply for job " + std::to_string(h.job_id()) + " from server " + std::to_string(s));
          continue;
        }
        if (h.op() == proto::ERROR) return AbortedError("server " + std::to_string(s) + ": " + h.error().message());
        if (op == proto::PARAMS && h.op() == proto::PUSH_ACK && expected_acks_[s] > 0) {
          --expected_acks_[s];  // a sparse part's push, whose rows come back through PullRows
          continue;
        }
        if (h.op() != op) {
          drops_.Drop("dropped " + proto::Op_Name(h.op()) + " from server " + std::to_string(s) +
                      " while waiting for " + proto::Op_Name(op));
          continue;
        }
        if (op == proto::PUSH_ACK) {
          --owed[s];
          --expected_acks_[s];
          lowest = std::min<int64_t>(lowest, h.step());
          continue;
        }
        if (h.step() < min_version) {
          drops_.Drop("dropped stale PARAMS of version " + std::to_string(h.step()) + " from server " +
                      std::to_string(s) + ", expected >= " + std::to_string(min_version));
          continue;
        }
        // Check every range before copying any.
        std::vector<int> slices;
        for (const proto::KeyRange& r : h.ranges()) {
          const int slice = FindSlice(s, r);
          if (slice < 0 || received[s][slice]) {
            slices.clear();
            break;
          }
          slices.push_back(slice);
        }
        if (slices.empty()) {
          drops_.Drop("dropped PARAMS from server " + std::to_string(s) + " with ranges it does not own or sent twice");
          continue;
        }
        for (size_t f = 0; f < slices.size(); ++f) {
          const proto::KeyRange& r = h.ranges(f);
          if (r.sparse()) {
            // Only the rows a sparse pull asked for (DecodeMessage checked the frame).
            auto rows = ParseSparseFrame(m->frames[f], r.end() - r.begin());
            if (rows.ok()) CopySparseValues(*rows, params + r.begin());
          } else {
            std::memcpy(params + r.begin(), m->frames[f].data(), m->frames[f].size());
          }
          pulled_bytes_ += m->frames[f].size();
          received[s][slices[f]] = true;
          if (on_slice) on_slice({r.begin(), r.end()});
        }
        owed[s] -= slices.size();
        lowest = std::min<int64_t>(lowest, h.step());
      }
    }
  }
  if (version != nullptr) *version = lowest;
  return OkStatus();
}

}  // namespace tessera
