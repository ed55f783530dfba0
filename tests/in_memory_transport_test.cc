// What only the in-memory transport can show without timing: names and
// ports, and messages that wait for a bind. What it shares with ZeroMQ is in
// transport_test.cc.
#include "core/in_memory_transport.h"

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace tessera {
namespace {

proto::Header Beat(int64_t step) {
  proto::Header h;
  h.set_op(proto::HEARTBEAT);
  h.set_step(step);
  return h;
}

TEST(InMemoryTransportTest, AnyNameCanBeBoundAndPortZeroGetsAFreshPort) {
  InMemoryTransport transport;
  auto named = transport.Bind(SocketKind::kRouter, "mem://scheduler");
  ASSERT_OK(named.status());
  EXPECT_EQ((*named)->endpoint(), "mem://scheduler");
  auto first = transport.Bind(SocketKind::kRouter, "tcp://127.0.0.1:0");
  auto second = transport.Bind(SocketKind::kRouter, "tcp://127.0.0.1:0");
  ASSERT_OK(first.status());
  ASSERT_OK(second.status());
  EXPECT_NE((*first)->endpoint(), (*second)->endpoint());
  auto normalized = NormalizeEndpoint((*first)->endpoint());
  ASSERT_OK(normalized.status());  // a port that tools accept
  EXPECT_EQ(*normalized, (*first)->endpoint());
}

TEST(InMemoryTransportTest, MessagesSentBeforeTheBindWaitForIt) {
  InMemoryTransport transport;
  auto dealer = transport.Connect(SocketKind::kDealer, "mem://later");
  ASSERT_OK(dealer.status());
  ASSERT_OK((*dealer)->Send(Beat(1)));
  auto router = transport.Bind(SocketKind::kRouter, "mem://later");
  ASSERT_OK(router.status());
  auto m = (*router)->Receive(0);
  ASSERT_OK(m.status());
  EXPECT_EQ(m->header.step(), 1);
}

TEST(InMemoryTransportTest, AClosedRoutersAddressIsFreeAndItsDealersReachTheNextOne) {
  InMemoryTransport transport;
  auto router = transport.Bind(SocketKind::kRouter, "mem://scheduler");
  ASSERT_OK(router.status());
  auto dealer = transport.Connect(SocketKind::kDealer, "mem://scheduler");
  ASSERT_OK(dealer.status());
  router->reset();  // as a scheduler that stops
  ASSERT_OK((*dealer)->Send(Beat(2)));

  auto next = transport.Bind(SocketKind::kRouter, "mem://scheduler");
  ASSERT_OK(next.status());
  auto m = (*next)->Receive(0);
  ASSERT_OK(m.status());
  EXPECT_EQ(m->header.step(), 2);
  ASSERT_OK((*next)->Send(Beat(3), {}, m->peer));
  auto answer = (*dealer)->Receive(0);
  ASSERT_OK(answer.status());
  EXPECT_EQ(answer->header.step(), 3);
}

TEST(InMemoryTransportTest, ARouterReachesOnlyTheDealersConnectedToIt) {
  InMemoryTransport transport;
  auto a = transport.Bind(SocketKind::kRouter, "mem://a");
  auto b = transport.Bind(SocketKind::kRouter, "mem://b");
  ASSERT_OK(a.status());
  ASSERT_OK(b.status());
  auto dealer = transport.Connect(SocketKind::kDealer, "mem://a");
  ASSERT_OK(dealer.status());
  ASSERT_OK((*dealer)->Send(Beat(4)));
  auto m = (*a)->Receive(0);
  ASSERT_OK(m.status());
  const Status s = (*b)->Send(Beat(5), {}, m->peer);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
}

TEST(InMemoryTransportTest, OnlyRoutersBindAndOnlyDealersConnect) {
  InMemoryTransport transport;
  EXPECT_EQ(transport.Bind(SocketKind::kDealer, "mem://x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(transport.Connect(SocketKind::kRouter, "mem://x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(transport.Connect(SocketKind::kDealer, "").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tessera
