#include "scheduler/membership.h"

#include <algorithm>

namespace tessera {

Membership::Membership(int servers, int workers) : servers_(servers), workers_(workers) {}

Membership::Admission Membership::Register(const std::string& peer, const proto::Register& r, Clock::TimePoint now,
                                           std::string* refusal) {
  if (nodes_.count(peer) > 0) return Admission::kDropped;
  if (r.role() != proto::SERVER && r.role() != proto::WORKER) return Admission::kDropped;
  if (r.role() == proto::SERVER && r.address().empty()) {
    *refusal = "a server must give its address";
    return Admission::kRefused;
  }
  Node node;
  node.peer = peer;
  node.role = r.role();
  node.pid = r.pid();
  node.address = r.address();
  node.curve_public_key = r.curve_public_key();
  node.last_heartbeat = now;
  std::vector<std::string>& ranked = r.role() == proto::SERVER ? server_peers_ : worker_peers_;
  const int count = r.role() == proto::SERVER ? servers_ : workers_;
  if (static_cast<int>(ranked.size()) >= count) {
    node.standby = true;
    nodes_[peer] = node;
    if (r.role() == proto::WORKER) standby_.push_back(peer);
    return r.role() == proto::SERVER ? Admission::kSpare : Admission::kStandby;
  }
  node.rank = static_cast<int>(ranked.size());
  ranked.push_back(peer);
  nodes_[peer] = node;
  return Admission::kRanked;
}

Membership::Node* Membership::Find(const std::string& peer) {
  auto it = nodes_.find(peer);
  return it == nodes_.end() ? nullptr : &it->second;
}

const Membership::Node* Membership::FindByPid(int pid) const {
  for (const auto& [peer, node] : nodes_) {
    if (node.pid == pid && !node.released) return &node;
  }
  return nullptr;
}

bool Membership::Heartbeat(proto::Role role, int rank, Clock::TimePoint now) {
  const std::vector<std::string>* peers = role == proto::SERVER   ? &server_peers_
                                          : role == proto::WORKER ? &worker_peers_
                                                                  : nullptr;
  if (peers == nullptr || rank < 0 || rank >= static_cast<int>(peers->size()) || (*peers)[rank].empty()) return false;
  nodes_[(*peers)[rank]].last_heartbeat = now;
  return true;
}

void Membership::StartHeartbeats(Clock::TimePoint now) {
  for (auto& [peer, node] : nodes_) node.last_heartbeat = now;
}

void Membership::Excuse(Clock::Duration busy) {
  for (auto& [peer, node] : nodes_) node.last_heartbeat += busy;
}

std::vector<Membership::Silent> Membership::SilentNodes(Clock::TimePoint now, Clock::Duration timeout) const {
  std::vector<Silent> silent;
  for (const auto& [peer, node] : nodes_) {
    if (node.released || node.standby || now - node.last_heartbeat <= timeout) continue;
    const double seconds = std::chrono::duration<double>(now - node.last_heartbeat).count();
    silent.push_back({peer, node.role, "sent no heartbeat for " + std::to_string(seconds).substr(0, 4) + " s: it is lost"});
  }
  return silent;
}

std::optional<Membership::Node> Membership::Remove(const std::string& peer) {
  auto it = nodes_.find(peer);
  if (it == nodes_.end()) return std::nullopt;
  const Node node = it->second;
  nodes_.erase(it);
  if (node.standby) {
    standby_.erase(std::remove(standby_.begin(), standby_.end(), peer), standby_.end());
  } else if (node.role == proto::WORKER) {
    worker_peers_[node.rank].clear();
  }
  return node;
}

std::optional<Membership::Node> Membership::AssignStandby(Clock::TimePoint now) {
  auto free = std::find(worker_peers_.begin(), worker_peers_.end(), std::string());
  if (standby_.empty() || free == worker_peers_.end()) return std::nullopt;
  Node& node = nodes_[standby_.front()];
  standby_.erase(standby_.begin());
  node.standby = false;
  node.rank = static_cast<int>(free - worker_peers_.begin());
  node.last_heartbeat = now;  // it beats once it has the map
  *free = node.peer;
  return node;
}

void Membership::ReleaseWorkers() {
  for (const std::string& peer : worker_peers_) {
    if (!peer.empty()) nodes_[peer].released = true;
  }
}

bool Membership::Formed() const {
  if (!AllServersIn() || registered_workers() < workers_) return false;
  return std::all_of(server_peers_.begin(), server_peers_.end(),
                     [this](const std::string& peer) { return nodes_.at(peer).ready; });
}

std::vector<int> Membership::LiveWorkers() const {
  std::vector<int> ranks;
  for (size_t r = 0; r < worker_peers_.size(); ++r) {
    if (!worker_peers_[r].empty()) ranks.push_back(static_cast<int>(r));
  }
  return ranks;
}

}  // namespace tessera
