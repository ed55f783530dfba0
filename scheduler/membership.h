// Who takes part in a job: the servers and workers that registered, by
// rank; spare servers and standby workers beyond the job's counts; and when
// each last sent a heartbeat. Events in, decisions out: no sockets, and the
// time of each event is passed in. Not thread-safe (the scheduler's event
// loop owns it).
#ifndef TESSERA_SCHEDULER_MEMBERSHIP_H_
#define TESSERA_SCHEDULER_MEMBERSHIP_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "proto/wire.pb.h"

namespace tessera {

class Membership {
 public:
  struct Node {
    std::string peer;  // its routing id on the scheduler's socket
    proto::Role role = proto::ROLE_UNSPECIFIED;
    int rank = -1;        // -1 for a spare server or a standby worker
    std::string address;  // a server's, for the workers to connect to
    std::string curve_public_key;  // a server's, with CURVE (Register.curve_public_key)
    int pid = 0;
    bool ready = false;     // a server that has set up its slices (SERVER_READY)
    bool released = false;  // told to shut down: its silence is expected
    bool standby = false;   // a spare server or a standby worker
    Clock::TimePoint last_heartbeat;
  };

  // A job of `servers` servers and `workers` workers.
  Membership(int servers, int workers);

  // What a REGISTER makes of its sender.
  enum class Admission {
    kRanked,   // a server or worker of the job, with the next rank
    kSpare,    // a server beyond the job's count: waits for a rollback to need it
    kStandby,  // a worker beyond the job's count: waits for the rank of a lost one
    kRefused,  // *refusal says why (a server that gives no address)
    kDropped,  // a second REGISTER from one peer, or a role that is neither
  };
  Admission Register(const std::string& peer, const proto::Register& r, Clock::TimePoint now, std::string* refusal);

  // The node of `peer`, or nullptr.
  Node* Find(const std::string& peer);
  // The node with process id `pid` that was not released, or nullptr.
  const Node* FindByPid(int pid) const;

  // A heartbeat from the node of `role` and `rank`; false when there is none.
  bool Heartbeat(proto::Role role, int rank, Clock::TimePoint now);
  // Silence counts from `now` for every node: the job starts, and
  // heartbeats begin with the cluster map.
  void StartHeartbeats(Clock::TimePoint now);
  // `busy`: time the scheduler spent away from its socket (a slow fsync,
  // say) while heartbeats waited in the queue; it is not the nodes' silence.
  void Excuse(Clock::Duration busy);
  struct Silent {
    std::string peer;
    proto::Role role;
    std::string why;  // "sent no heartbeat for 5.20 s: it is lost"
  };
  // The nodes, neither released nor standing by, silent for longer than
  // `timeout`, in peer order.
  std::vector<Silent> SilentNodes(Clock::TimePoint now, Clock::Duration timeout) const;

  // Removes the node of `peer` (lost, or a spare gone): a worker's rank
  // becomes free, a standby leaves the queue. Returns it; nullopt when unknown.
  std::optional<Node> Remove(const std::string& peer);
  // Gives the lowest free worker rank to the standby worker that came first,
  // and returns it (its silence counts from `now`); nullopt when there is no
  // free rank or no standby.
  std::optional<Node> AssignStandby(Clock::TimePoint now);
  // Every worker taking part is told to shut down: none of them is watched any more.
  void ReleaseWorkers();

  // Every server registered (each can be told its key ranges).
  bool AllServersIn() const { return static_cast<int>(server_peers_.size()) == servers_; }
  // Every server registered and ready, and every worker rank given: the job can start.
  bool Formed() const;
  int registered_servers() const { return static_cast<int>(server_peers_.size()); }
  int registered_workers() const { return static_cast<int>(worker_peers_.size()); }
  int standby_workers() const { return static_cast<int>(standby_.size()); }
  // The ranks with a worker, in order.
  std::vector<int> LiveWorkers() const;
  // Peers by rank; a lost worker's rank is "" until a standby takes it.
  const std::vector<std::string>& server_peers() const { return server_peers_; }
  const std::vector<std::string>& worker_peers() const { return worker_peers_; }
  // Every node, spares and standbys included, by peer.
  const std::map<std::string, Node>& nodes() const { return nodes_; }

 private:
  int servers_, workers_;
  std::map<std::string, Node> nodes_;
  std::vector<std::string> server_peers_, worker_peers_;
  std::vector<std::string> standby_;  // workers waiting for a free rank, in arrival order
};

}  // namespace tessera

#endif  // TESSERA_SCHEDULER_MEMBERSHIP_H_
