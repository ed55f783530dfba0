// Who takes part in a job (scheduler/membership.h), in one process: ranks,
// spares and standbys, heartbeats and silence, a lost worker's rank taken.
#include "scheduler/membership.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tessera {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Admission = Membership::Admission;

proto::Register Reg(proto::Role role, int pid, const std::string& address = "") {
  proto::Register r;
  r.set_role(role);
  r.set_pid(pid);
  r.set_address(role == proto::SERVER && address.empty() ? "tcp://10.0.0.1:" + std::to_string(pid) : address);
  return r;
}

class MembershipTest : public ::testing::Test {
 protected:
  Admission Register(const std::string& peer, proto::Role role, int pid) {
    std::string refusal;
    return m_.Register(peer, Reg(role, pid), t0_, &refusal);
  }
  // Two servers, two workers, all in and the servers ready.
  void Form() {
    ASSERT_EQ(Register("s0", proto::SERVER, 10), Admission::kRanked);
    ASSERT_EQ(Register("s1", proto::SERVER, 11), Admission::kRanked);
    ASSERT_EQ(Register("w0", proto::WORKER, 20), Admission::kRanked);
    ASSERT_EQ(Register("w1", proto::WORKER, 21), Admission::kRanked);
    m_.Find("s0")->ready = m_.Find("s1")->ready = true;
    m_.StartHeartbeats(t0_);
  }
  Membership m_{2, 2};
  Clock::TimePoint t0_ = Clock::TimePoint(seconds(1000));
};

TEST_F(MembershipTest, RanksFollowRegistrationAndExtraNodesWait) {
  EXPECT_EQ(Register("w0", proto::WORKER, 20), Admission::kRanked);
  EXPECT_EQ(Register("s0", proto::SERVER, 10), Admission::kRanked);
  EXPECT_EQ(Register("s1", proto::SERVER, 11), Admission::kRanked);
  EXPECT_TRUE(m_.AllServersIn());
  EXPECT_EQ(Register("s2", proto::SERVER, 12), Admission::kSpare);
  EXPECT_EQ(Register("w1", proto::WORKER, 21), Admission::kRanked);
  EXPECT_EQ(Register("w2", proto::WORKER, 22), Admission::kStandby);
  EXPECT_EQ(m_.Find("s1")->rank, 1);
  EXPECT_EQ(m_.Find("w1")->rank, 1);
  EXPECT_EQ(m_.Find("s2")->rank, -1);
  EXPECT_TRUE(m_.Find("s2")->standby);
  EXPECT_EQ(m_.server_peers(), (std::vector<std::string>{"s0", "s1"}));
  EXPECT_EQ(m_.worker_peers(), (std::vector<std::string>{"w0", "w1"}));
  EXPECT_EQ(m_.standby_workers(), 1);
  EXPECT_EQ(m_.nodes().size(), 6u);
}

TEST_F(MembershipTest, BadRegistrationsAreRefusedOrDropped) {
  std::string refusal;
  EXPECT_EQ(m_.Register("s0", Reg(proto::SERVER, 10, ""), t0_, &refusal), Admission::kRanked);
  proto::Register no_address = Reg(proto::SERVER, 11);
  no_address.clear_address();
  EXPECT_EQ(m_.Register("s1", no_address, t0_, &refusal), Admission::kRefused);
  EXPECT_EQ(refusal, "a server must give its address");
  EXPECT_EQ(m_.Register("s0", Reg(proto::WORKER, 10), t0_, &refusal), Admission::kDropped);  // a second REGISTER
  EXPECT_EQ(m_.Register("x", Reg(proto::ROLE_UNSPECIFIED, 13), t0_, &refusal), Admission::kDropped);
  EXPECT_EQ(m_.nodes().size(), 1u);
  EXPECT_EQ(m_.Find("s1"), nullptr);
}

TEST_F(MembershipTest, TheJobFormsWithEveryServerReadyAndEveryWorkerIn) {
  EXPECT_EQ(Register("s0", proto::SERVER, 10), Admission::kRanked);
  EXPECT_EQ(Register("s1", proto::SERVER, 11), Admission::kRanked);
  EXPECT_EQ(Register("w0", proto::WORKER, 20), Admission::kRanked);
  EXPECT_EQ(Register("w1", proto::WORKER, 21), Admission::kRanked);
  EXPECT_FALSE(m_.Formed());
  m_.Find("s0")->ready = true;
  EXPECT_FALSE(m_.Formed());
  m_.Find("s1")->ready = true;
  EXPECT_TRUE(m_.Formed());
}

TEST_F(MembershipTest, OnlyNodesSilentPastTheTimeoutAreReported) {
  Form();
  ASSERT_EQ(Register("w2", proto::WORKER, 22), Admission::kStandby);  // standbys are not watched
  EXPECT_TRUE(m_.Heartbeat(proto::WORKER, 0, t0_ + seconds(3)));
  EXPECT_TRUE(m_.Heartbeat(proto::SERVER, 1, t0_ + seconds(3)));
  EXPECT_FALSE(m_.Heartbeat(proto::WORKER, 5, t0_ + seconds(3)));    // no such rank
  EXPECT_FALSE(m_.Heartbeat(proto::SCHEDULER, 0, t0_ + seconds(3)));  // no such role
  EXPECT_TRUE(m_.SilentNodes(t0_ + seconds(5), seconds(5)).empty());  // exactly the timeout: not yet
  const auto silent = m_.SilentNodes(t0_ + milliseconds(6500), seconds(5));
  ASSERT_EQ(silent.size(), 2u);
  EXPECT_EQ(silent[0].peer, "s0");
  EXPECT_EQ(silent[0].role, proto::SERVER);
  EXPECT_EQ(silent[0].why, "sent no heartbeat for 6.50 s: it is lost");
  EXPECT_EQ(silent[1].peer, "w1");
  // Time the scheduler was busy is excused; released workers are not watched.
  m_.Excuse(seconds(2));
  EXPECT_TRUE(m_.SilentNodes(t0_ + milliseconds(6500), seconds(5)).empty());
  m_.ReleaseWorkers();
  const auto later = m_.SilentNodes(t0_ + seconds(60), seconds(5));
  ASSERT_EQ(later.size(), 2u);
  EXPECT_EQ(later[0].peer, "s0");
  EXPECT_EQ(later[1].peer, "s1");
}

TEST_F(MembershipTest, ALostWorkersRankGoesToTheFirstStandby) {
  Form();
  EXPECT_FALSE(m_.AssignStandby(t0_).has_value());  // no standby
  ASSERT_EQ(Register("w2", proto::WORKER, 22), Admission::kStandby);
  ASSERT_EQ(Register("w3", proto::WORKER, 23), Admission::kStandby);
  EXPECT_FALSE(m_.AssignStandby(t0_).has_value());  // no free rank
  const auto lost = m_.Remove("w0");
  ASSERT_TRUE(lost.has_value());
  EXPECT_EQ(lost->rank, 0);
  EXPECT_EQ(m_.LiveWorkers(), (std::vector<int>{1}));
  EXPECT_EQ(m_.worker_peers(), (std::vector<std::string>{"", "w1"}));
  const auto joined = m_.AssignStandby(t0_ + seconds(9));
  ASSERT_TRUE(joined.has_value());
  EXPECT_EQ(joined->peer, "w2");
  EXPECT_EQ(joined->rank, 0);
  EXPECT_FALSE(m_.Find("w2")->standby);
  EXPECT_EQ(m_.LiveWorkers(), (std::vector<int>{0, 1}));
  EXPECT_EQ(m_.standby_workers(), 1);
  // Its silence counts from when it got the rank.
  EXPECT_TRUE(m_.Heartbeat(proto::WORKER, 1, t0_ + seconds(9)));
  for (const auto& node : m_.SilentNodes(t0_ + seconds(12), seconds(5))) EXPECT_NE(node.peer, "w2");
  // A standby that leaves just leaves the queue.
  ASSERT_TRUE(m_.Remove("w3").has_value());
  EXPECT_EQ(m_.standby_workers(), 0);
  EXPECT_FALSE(m_.Remove("w3").has_value());
}

TEST_F(MembershipTest, ProcessesAreFoundByPidUntilReleased) {
  Form();
  ASSERT_NE(m_.FindByPid(21), nullptr);
  EXPECT_EQ(m_.FindByPid(21)->peer, "w1");
  EXPECT_EQ(m_.FindByPid(99), nullptr);
  m_.ReleaseWorkers();
  EXPECT_EQ(m_.FindByPid(21), nullptr);
  EXPECT_NE(m_.FindByPid(11), nullptr);
}

}  // namespace
}  // namespace tessera
