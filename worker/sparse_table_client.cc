#include "worker/sparse_table_client.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>

#include "core/id_partition.h"
#include "core/message.h"

namespace tessera {

namespace {

proto::Header Request(proto::Op op, uint64_t job_id, int rank, int table, int64_t step, size_t count, int dim) {
  proto::Header h;
  h.set_op(op);
  h.set_job_id(job_id);
  h.set_sender_role(proto::WORKER);
  h.set_sender_rank(rank);
  h.set_step(step);
  h.mutable_sparse_rows()->set_table(table);
  h.mutable_sparse_rows()->set_count(count);
  h.mutable_sparse_rows()->set_dim(dim);
  return h;
}

// A frame of bytes copied into memory the frame owns.
OutFrame CopiedFrame(std::vector<char> bytes) {
  auto owned = std::make_shared<const std::vector<char>>(std::move(bytes));
  return OutFrame{owned->data(), owned->size(), owned};
}

}  // namespace

Status SparseTableClient::Connect() {
  for (size_t s = 0; s < addresses_.size(); ++s) {
    ConnectOptions options;
    if (s < public_keys_.size()) options.server_public_key = public_keys_[s];
    ASSIGN_OR_RETURN(auto socket, transport_->Connect(SocketKind::kDealer, addresses_[s], options));
    sockets_.push_back(std::move(socket));
  }
  return OkStatus();
}

std::vector<std::vector<size_t>> SparseTableClient::SplitByServer(int table, std::span<const uint64_t> ids) const {
  std::vector<std::vector<size_t>> positions(sockets_.size());
  const int servers = static_cast<int>(sockets_.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    positions[ServerOfId(static_cast<uint64_t>(table), ids[i], servers)].push_back(i);
  }
  return positions;
}

Status SparseTableClient::PushRows(int table, int64_t step, int64_t examples, std::span<const uint64_t> ids,
                                   const float* grads) {
  if (table < 0 || table >= static_cast<int>(dims_.size())) {
    return InvalidArgumentError("sparse table " + std::to_string(table) + " of " + std::to_string(dims_.size()));
  }
  const size_t dim = static_cast<size_t>(dims_[table]);
  const std::vector<std::vector<size_t>> positions = SplitByServer(table, ids);
  for (size_t s = 0; s < sockets_.size(); ++s) {
    const std::vector<size_t>& mine = positions[s];
    std::vector<char> id_bytes(mine.size() * sizeof(uint64_t));
    std::vector<char> row_bytes(mine.size() * dim * sizeof(float));
    for (size_t k = 0; k < mine.size(); ++k) {
      std::memcpy(id_bytes.data() + k * sizeof(uint64_t), &ids[mine[k]], sizeof(uint64_t));
      std::memcpy(row_bytes.data() + k * dim * sizeof(float), grads + mine[k] * dim, dim * sizeof(float));
    }
    proto::Header h = Request(proto::SPARSE_PUSH, job_id_, rank_, table, step, mine.size(), dims_[table]);
    h.set_examples(examples);
    pushed_bytes_ += id_bytes.size() + row_bytes.size();
    RETURN_IF_ERROR(sockets_[s]->Send(h, {CopiedFrame(std::move(id_bytes)), CopiedFrame(std::move(row_bytes))}));
  }
  return OkStatus();
}

Status SparseTableClient::PullRows(int table, int64_t version, std::span<const uint64_t> ids, float* rows,
                                   int timeout_ms, int64_t* got_version) {
  if (table < 0 || table >= static_cast<int>(dims_.size())) {
    return InvalidArgumentError("sparse table " + std::to_string(table) + " of " + std::to_string(dims_.size()));
  }
  const size_t dim = static_cast<size_t>(dims_[table]);
  const std::vector<std::vector<size_t>> positions = SplitByServer(table, ids);
  std::vector<bool> owed(sockets_.size(), false);
  int64_t lowest = INT64_MAX;  // of the replies
  for (size_t s = 0; s < sockets_.size(); ++s) {
    if (positions[s].empty() && !pull_every_server_) continue;
    std::vector<char> id_bytes(positions[s].size() * sizeof(uint64_t));
    for (size_t k = 0; k < positions[s].size(); ++k) {
      std::memcpy(id_bytes.data() + k * sizeof(uint64_t), &ids[positions[s][k]], sizeof(uint64_t));
    }
    RETURN_IF_ERROR(sockets_[s]->Send(
        Request(proto::SPARSE_PULL, job_id_, rank_, table, version, positions[s].size(), dims_[table]),
        {CopiedFrame(std::move(id_bytes))}));
    owed[s] = true;
  }
  // Poll in short slices so a stop request (or a signal's EINTR) is noticed.
  constexpr int kSliceMs = 200;
  auto last_progress = std::chrono::steady_clock::now();
  std::vector<float> scratch;
  for (;;) {
    std::vector<Socket*> pending;
    std::vector<size_t> index;
    for (size_t s = 0; s < sockets_.size(); ++s) {
      if (!owed[s]) continue;
      pending.push_back(sockets_[s].get());
      index.push_back(s);
    }
    if (pending.empty()) {
      if (got_version != nullptr) *got_version = lowest;
      return OkStatus();
    }
    if (stop_ != nullptr && stop_->load()) return AbortedError("stopped by signal");
    if (interrupt_ != nullptr) pending.push_back(interrupt_);
    std::vector<bool> ready = transport_->Poll(pending, std::min(kSliceMs, timeout_ms));
    if (interrupt_ != nullptr) {
      if (ready.back() && on_interrupt_()) return AbortedError("interrupted by the scheduler");
      ready.pop_back();
      pending.pop_back();
    }
    bool any = false;
    for (size_t i = 0; i < ready.size(); ++i) {
      if (!ready[i]) continue;
      any = true;
      const size_t s = index[i];
      auto m = sockets_[s]->Receive(0);
      if (!m.ok()) {
        if (m.status().code() != StatusCode::kDeadlineExceeded) {
          drops_.Drop("dropped a malformed reply from server " + std::to_string(s) + ": " + m.status().ToString());
        }
        continue;
      }
      const proto::Header& h = m->header;
      if (h.job_id() != job_id_) {
        drops_.Drop("dropped a reply for job " + std::to_string(h.job_id()) + " from server " + std::to_string(s));
        continue;
      }
      if (h.op() == proto::ERROR) return AbortedError("server " + std::to_string(s) + ": " + h.error().message());
      if (h.op() != proto::SPARSE_ROWS || h.sparse_rows().table() != table ||
          h.sparse_rows().count() != positions[s].size() || h.sparse_rows().dim() != dims_[table] ||
          h.step() < version) {
        drops_.Drop("dropped an unexpected " + proto::Op_Name(h.op()) + " from server " + std::to_string(s));
        continue;
      }
      const float* values = FrameFloats(m->frames[0], &scratch);
      for (size_t k = 0; k < positions[s].size(); ++k) {
        std::memcpy(rows + positions[s][k] * dim, values + k * dim, dim * sizeof(float));
      }
      pulled_bytes_ += m->frames[0].size();
      lowest = std::min(lowest, h.step());
      owed[s] = false;
      last_progress = std::chrono::steady_clock::now();
    }
    if (!any && std::chrono::steady_clock::now() - last_progress > std::chrono::milliseconds(timeout_ms)) {
      return DeadlineExceededError("no sparse rows from " + std::to_string(pending.size()) + " of " +
                                   std::to_string(sockets_.size()) + " servers within " +
                                   std::to_string(timeout_ms) + " ms");
    }
  }
}

}  // namespace tessera
