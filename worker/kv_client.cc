#include "worker/kv_client.h"

#include <algorithm>
#include <chrono>
#include <cstring>

namespace tessera {

Status KvClient::Connect() {
  for (const ServerEndpoint& s : servers_) {
    ASSIGN_OR_RETURN(auto socket, transport_->Connect(SocketKind::kDealer, s.address));
    sockets_.push_back(std::move(socket));
  }
  return OkStatus();
}

Status KvClient::Push(int64_t step, int64_t examples, const std::shared_ptr<std::vector<float>>& grads,
                      bool want_params) {
  for (size_t s = 0; s < servers_.size(); ++s) {
    proto::Header h;
    h.set_op(proto::PUSH);
    h.set_job_id(job_id_);
    h.set_sender_role(proto::WORKER);
    h.set_sender_rank(rank_);
    h.set_step(step);
    h.set_examples(examples);
    h.set_want_params(want_params);
    SetRanges(servers_[s].ranges, &h);
    std::vector<OutFrame> frames;
    frames.reserve(servers_[s].ranges.size());
    for (const KeyRange& r : servers_[s].ranges) {
      frames.push_back({grads->data() + r.begin, r.size() * sizeof(float), grads});
    }
    RETURN_IF_ERROR(sockets_[s]->Send(h, frames));
  }
  return OkStatus();
}

Status KvClient::Pull(int64_t step) {
  for (size_t s = 0; s < servers_.size(); ++s) {
    proto::Header h;
    h.set_op(proto::PULL);
    h.set_job_id(job_id_);
    h.set_sender_role(proto::WORKER);
    h.set_sender_rank(rank_);
    h.set_step(step);
    RETURN_IF_ERROR(sockets_[s]->Send(h));
  }
  return OkStatus();
}

Status KvClient::WaitParams(float* params, int timeout_ms, int64_t* version, int64_t min_version) {
  return WaitAll(proto::PARAMS, params, timeout_ms, version, min_version);
}

Status KvClient::WaitAcks(int timeout_ms) { return WaitAll(proto::PUSH_ACK, nullptr, timeout_ms, nullptr, 0); }

Status KvClient::WaitAll(proto::Op op, float* params, int timeout_ms, int64_t* version, int64_t min_version) {
  std::vector<Socket*> pending;
  for (auto& s : sockets_) pending.push_back(s.get());
  std::vector<int> index(sockets_.size());
  for (size_t i = 0; i < index.size(); ++i) index[i] = static_cast<int>(i);
  int64_t lowest = INT64_MAX;
  // Poll in short slices so a stop request (or a signal's EINTR) is noticed.
  constexpr int kSliceMs = 200;
  auto last_progress = std::chrono::steady_clock::now();
  while (!pending.empty()) {
    if (stop_ != nullptr && stop_->load()) return AbortedError("stopped by signal");
    std::vector<bool> ready = PollReadable(pending, std::min(kSliceMs, timeout_ms));
    if (std::none_of(ready.begin(), ready.end(), [](bool b) { return b; })) {
      if (std::chrono::steady_clock::now() - last_progress < std::chrono::milliseconds(timeout_ms)) continue;
      return DeadlineExceededError("no answer from " + std::to_string(pending.size()) + " of " +
                                   std::to_string(sockets_.size()) + " servers within " + std::to_string(timeout_ms) +
                                   " ms");
    }
    for (size_t i = ready.size(); i-- > 0;) {
      if (!ready[i]) continue;
      const int s = index[i];
      last_progress = std::chrono::steady_clock::now();
      auto m = pending[i]->Receive(0);
      if (!m.ok()) {
        LOG(WARNING) << "dropped a malformed reply from server " << s << ": " << m.status().ToString();
        continue;
      }
      const proto::Header& h = m->header;
      if (h.job_id() != job_id_) {
        LOG(WARNING) << "dropped a reply for job " << h.job_id() << " from server " << s;
        continue;
      }
      if (h.op() == proto::ERROR) return AbortedError("server " + std::to_string(s) + ": " + h.error().message());
      if (h.op() != op) {
        LOG(WARNING) << "dropped " << proto::Op_Name(h.op()) << " from server " << s << " while waiting for "
                     << proto::Op_Name(op);
        continue;
      }
      if (op == proto::PARAMS) {
        if (h.step() < min_version) {
          LOG(WARNING) << "dropped stale PARAMS of version " << h.step() << " from server " << s << ", expected >= "
                       << min_version;
          continue;
        }
        if (RangesOf(h) != servers_[s].ranges) {
          LOG(WARNING) << "dropped PARAMS from server " << s << " with ranges other than the cluster map's";
          continue;
        }
        for (int f = 0; f < h.ranges_size(); ++f) {
          std::memcpy(params + h.ranges(f).begin(), m->frames[f].data(), m->frames[f].size());
        }
      }
      lowest = std::min<int64_t>(lowest, h.step());
      pending.erase(pending.begin() + i);
      index.erase(index.begin() + i);
    }
  }
  if (version != nullptr) *version = lowest;
  return OkStatus();
}

}  // namespace tessera
