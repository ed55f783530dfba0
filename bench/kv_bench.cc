// kv_bench: push+pull throughput and latency between one worker and 1 or 2
// parameter servers, beside raw ZeroMQ measured by the same program.
//
// What it measures, and why:
//
//   * Raw ZeroMQ baseline. A DEALER client sends one message of the value
//     size to a ROUTER echo thread over tcp://127.0.0.1, which sends the very
//     same message back (zero-copy, as a tuned raw program would). One round
//     trip moves 2x the value size, like a push followed by a pull: loopback
//     TCP plus ZeroMQ framing, no application work. (Not a strict ceiling:
//     Tessera sends large values in parts and pipelines them, one message
//     here does not.)
//
//   * Tessera "push+params". KvClient::Push(step, examples=1, grads,
//     want_params=true) then KvClient::WaitParams: the gradient goes to the
//     servers, each applies the optimizer (BSP with one worker, so every push
//     completes a step) and answers with its slice of the parameters. This is
//     exactly what a BSP worker does each step, so it is the number that
//     bounds training speed for a model of that size.
//
//   * Tessera "push/ack+pull". Push(want_params=false) + WaitAcks, then
//     Pull + WaitParams: two round trips per step, the protocol a worker would
//     use without the fused reply. Shows what the fusion saves.
//
//   * Several requests in flight (--inflight, default 4). Latency-bound
//     numbers hide how much the pipe can carry; with K outstanding requests
//     the link stays busy. Raw: K messages outstanding on the one DEALER.
//     Tessera: K KvClients (each its own DEALER sockets) and ASP consistency,
//     where every push is applied on arrival (under BSP with one worker, a
//     second push for the same step would be refused). Each client keeps one
//     push+params outstanding; together K.
//
// Processes are simulated by threads with their own ZeroMQ contexts (a
// ZmqTransport each), so each side has its own I/O thread as separate processes
// would. The benchmark plays the scheduler itself: it binds a ROUTER, starts
// Server objects on their own threads, answers their REGISTER with a
// CLUSTER_MAP (a one-tensor "model" of the value size, sliced with
// PlanServerSlices as the scheduler slices a job), waits for SERVER_READY, and sends SHUTDOWN at the end.
//
// --curve runs the Tessera side with CurveZMQ (core/zmq_transport.h: the
// servers as CURVE servers admitting the worker's key, the worker and the
// fake scheduler with their own pair) on keys made for the run; the raw
// baseline stays plain. Compare its 1 MiB push+params with a run without it.
//
// Every figure is the median of 3 repetitions, each running until both
// --seconds have passed and a minimum number of round trips completed, after a
// warm-up. GB/s counts bytes moved both ways (2 x value size per round trip)
// in units of 1e9 bytes per second.
//
// Usage: kv_bench [--quick] [--json[=PATH]] [--seconds=S] [--inflight=K]
//                 [--servers=1,2] [--sizes=4K,64K,1M,16M] [--curve]
//   --json        JSON lines on stdout (the table then goes to stderr);
//   --json=PATH   JSON lines into PATH.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gflags/gflags.h>
#include <glog/logging.h>
#include <zmq.hpp>

#include "core/curve_keys.h"
#include "core/key_range.h"
#include "core/message.h"
#include "core/status.h"
#include "core/zmq_transport.h"
#include "proto/job.pb.h"
#include "proto/wire.pb.h"
#include "server/server.h"
#include "worker/kv_client.h"

namespace tessera {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kReplyTimeoutMs = 30000;
constexpr int kRepetitions = 3;
constexpr uint64_t kJobId = 4242;

struct BenchOptions {
  double seconds = 1.0;         // per repetition
  double warmup_seconds = 0.2;  // before the repetitions
  int64_t min_round_trips = 10; // per repetition, whatever the time
  int inflight = 4;
  std::vector<int> servers = {1, 2};
  std::vector<size_t> sizes = {4 << 10, 64 << 10, 1 << 20, 16 << 20};
  bool json = false;
  std::string json_path;  // empty: stdout
  bool curve = false;
};

// The run's CURVE keys: one pair for the worker and fake scheduler (one
// transport), one the servers share; each side admits the other's.
struct BenchKeys {
  CurveKeyPair bench;
  CurveKeyPair server;

  CurveSettings BenchSide() const { return {bench, {{server.public_key, "server"}}, nullptr}; }
  CurveSettings ServerSide() const { return {server, {{bench.public_key, "bench"}}, nullptr}; }
};

StatusOr<BenchKeys> MakeBenchKeys() {
  BenchKeys keys;
  ASSIGN_OR_RETURN(keys.bench, GenerateCurveKeyPair());
  ASSIGN_OR_RETURN(keys.server, GenerateCurveKeyPair());
  return keys;
}

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::string SizeName(size_t bytes) {
  if (bytes >= (1 << 20) && bytes % (1 << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  if (bytes >= (1 << 10) && bytes % (1 << 10) == 0) return std::to_string(bytes >> 10) + " KiB";
  return std::to_string(bytes) + " B";
}

// ---------------------------------------------------------------------------
// The timing loop, shared by every variant so they are measured alike.

// Something that issues requests and completes them in issue order, with up
// to `window` outstanding. `slot` is the request's index modulo the window.
class Pipeline {
 public:
  virtual ~Pipeline() = default;
  virtual int window() const = 0;
  virtual Status Issue(int slot) = 0;
  virtual Status Complete(int slot) = 0;
};

// Keeps window() requests in flight until `seconds` have passed and at least
// `min_round_trips` completed, then drains. Returns seconds per round trip.
StatusOr<double> TimeRoundTrips(Pipeline* p, double seconds, int64_t min_round_trips) {
  const int window = p->window();
  const Clock::time_point start = Clock::now();
  int64_t issued = 0;
  int64_t done = 0;
  for (; issued < window; ++issued) RETURN_IF_ERROR(p->Issue(static_cast<int>(issued % window)));
  bool issuing = true;
  while (done < issued) {
    RETURN_IF_ERROR(p->Complete(static_cast<int>(done % window)));
    ++done;
    if (issuing && done >= min_round_trips && SecondsSince(start) >= seconds) issuing = false;
    if (issuing) {
      RETURN_IF_ERROR(p->Issue(static_cast<int>(issued % window)));
      ++issued;
    }
  }
  return SecondsSince(start) / static_cast<double>(done);
}

// ---------------------------------------------------------------------------
// Raw ZeroMQ: a ROUTER echo thread and a DEALER client, each with its own
// context (own I/O thread), over loopback TCP.

class RawEcho {
 public:
  RawEcho() : socket_(context_, zmq::socket_type::router) {
    socket_.bind("tcp://127.0.0.1:*");
    endpoint_ = socket_.get(zmq::sockopt::last_endpoint);
    thread_ = std::thread([this] { Loop(); });
  }
  ~RawEcho() {
    stop_.store(true);
    thread_.join();
  }
  const std::string& endpoint() const { return endpoint_; }

 private:
  void Loop() {
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    while (!stop_.load()) {
      if (zmq::poll(&item, 1, std::chrono::milliseconds(100)) == 0) continue;
      // Drain what is queued: [identity, payload] each.
      while (true) {
        zmq::message_t identity, payload;
        if (!socket_.recv(identity, zmq::recv_flags::dontwait)) break;
        if (!socket_.recv(payload, zmq::recv_flags::none)) break;
        socket_.send(identity, zmq::send_flags::sndmore);
        socket_.send(payload, zmq::send_flags::none);  // the received buffer goes back: no copy
      }
    }
    socket_.close();
  }

  zmq::context_t context_{1};
  zmq::socket_t socket_;
  std::string endpoint_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class RawPipeline : public Pipeline {
 public:
  RawPipeline(zmq::socket_t* socket, size_t bytes, int window)
      : socket_(socket), buffer_(bytes, 0x5a), window_(window) {}
  int window() const override { return window_; }
  Status Issue(int /*slot*/) override {
    // Zero-copy send of a buffer that never changes (no free function).
    zmq::message_t msg(buffer_.data(), buffer_.size(), nullptr, nullptr);
    socket_->send(msg, zmq::send_flags::none);
    return OkStatus();
  }
  Status Complete(int /*slot*/) override {
    zmq::pollitem_t item{socket_->handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, std::chrono::milliseconds(kReplyTimeoutMs)) == 0) {
      return DeadlineExceededError("raw echo did not answer");
    }
    zmq::message_t reply;
    if (!socket_->recv(reply, zmq::recv_flags::none)) return InternalError("raw recv failed");
    if (reply.size() != buffer_.size()) return DataLossError("raw echo returned the wrong size");
    return OkStatus();
  }

 private:
  zmq::socket_t* socket_;
  std::vector<char> buffer_;
  int window_;
};

// ---------------------------------------------------------------------------
// Tessera: the benchmark plays the scheduler for a cluster of Server threads.

class BenchCluster {
 public:
  // Starts `servers` servers for a one-tensor model of `keys` float32 keys.
  // *transport (the bench's own) carries the scheduler socket; `curve`:
  // the run's keys, or null for plain TCP.
  static StatusOr<std::unique_ptr<BenchCluster>> Start(Transport* transport, int servers, uint64_t keys,
                                                       proto::Consistency consistency, const BenchKeys* curve) {
    std::unique_ptr<BenchCluster> c(new BenchCluster());
    ASSIGN_OR_RETURN(c->scheduler_, transport->Bind(SocketKind::kRouter, "tcp://127.0.0.1:0"));
    c->results_.resize(servers);
    for (int i = 0; i < servers; ++i) {
      c->threads_.emplace_back([cluster = c.get(), i, curve] {
        // One ZeroMQ context (own I/O thread) per server, as in separate processes.
        auto own =
            curve == nullptr ? std::make_unique<ZmqTransport>() : std::make_unique<ZmqTransport>(curve->ServerSide());
        ServerOptions options;
        options.scheduler = cluster->scheduler_->endpoint();
        options.register_timeout_s = 30;
        if (curve != nullptr) {
          options.scheduler_public_key = curve->bench.public_key;
          options.curve_public_key = curve->server.public_key;
        }
        Server server(own.get(), options, &cluster->stop_);
        cluster->results_[i] = server.Run();
      });
    }
    RETURN_IF_ERROR(c->Configure(servers, keys, consistency));
    return c;
  }

  ~BenchCluster() {
    if (!threads_.empty()) Shutdown().IgnoreError();
  }

  const std::vector<ServerEndpoint>& endpoints() const { return endpoints_; }

  // Sends SHUTDOWN, joins the server threads; the first server error if any.
  Status Shutdown() {
    for (const std::string& peer : peers_) {
      proto::Header h;
      h.set_op(proto::SHUTDOWN);
      h.set_job_id(kJobId);
      h.set_sender_role(proto::SCHEDULER);
      h.mutable_shutdown();
      scheduler_->Send(h, {}, peer).IgnoreError();  // a server that already exited is fine
    }
    if (peers_.size() < threads_.size()) stop_.store(true);  // some never registered
    for (std::thread& t : threads_) t.join();
    threads_.clear();
    for (const Status& s : results_) RETURN_IF_ERROR(s);
    return OkStatus();
  }

 private:
  BenchCluster() = default;

  Status Configure(int servers, uint64_t keys, proto::Consistency consistency) {
    // The addresses servers advertise, in REGISTER arrival order (= rank).
    std::vector<std::string> addresses, public_keys;
    while (static_cast<int>(peers_.size()) < servers) {
      ASSIGN_OR_RETURN(Message m, scheduler_->Receive(kReplyTimeoutMs));
      if (m.header.op() != proto::REGISTER) continue;
      peers_.push_back(m.peer);
      addresses.push_back(m.header.register_().address());
      public_keys.push_back(m.header.register_().curve_public_key());
    }

    TensorInfo tensor;
    tensor.name = "bench.value";
    tensor.shape = {static_cast<int64_t>(keys)};
    tensor.offset = 0;
    tensor.size = keys;
    tensor.init_bound = 0.05f;
    // Sliced as the scheduler slices a real job's keys.
    const std::vector<std::vector<KeyRange>> owned = PlanServerSlices({tensor}, servers);

    proto::ClusterMap map;
    proto::JobSpec* spec = map.mutable_spec();
    spec->set_name("kv_bench");
    spec->mutable_model()->add_layer()->mutable_linear()->set_out_features(1);
    spec->mutable_optimizer()->set_type(proto::OptimizerSpec::SGD);
    spec->mutable_optimizer()->set_learning_rate(0.01f);
    spec->mutable_cluster()->set_servers(servers);
    spec->mutable_cluster()->set_workers(1);
    // This bench plays the scheduler but answers no heartbeats: never time out.
    spec->mutable_cluster()->set_heartbeat_timeout_ms(24 * 3600 * 1000);
    spec->set_consistency(consistency);
    map.set_num_workers(1);
    map.set_num_keys(keys);
    proto::TensorMeta* meta = map.add_tensors();
    meta->set_name(tensor.name);
    meta->add_shape(tensor.shape[0]);
    meta->set_offset(tensor.offset);
    meta->set_size(tensor.size);
    meta->set_init_bound(tensor.init_bound);
    for (int r = 0; r < servers; ++r) {
      proto::ServerInfo* info = map.add_servers();
      info->set_rank(r);
      info->set_address(addresses[r]);
      for (const KeyRange& range : owned[r]) {
        proto::KeyRange* kr = info->add_ranges();
        kr->set_begin(range.begin);
        kr->set_end(range.end);
      }
      info->set_curve_public_key(public_keys[r]);
      endpoints_.push_back({addresses[r], owned[r], public_keys[r]});
    }
    for (int r = 0; r < servers; ++r) {
      map.set_rank(r);
      proto::Header h;
      h.set_op(proto::CLUSTER_MAP);
      h.set_job_id(kJobId);
      h.set_sender_role(proto::SCHEDULER);
      *h.mutable_cluster_map() = map;
      RETURN_IF_ERROR(scheduler_->Send(h, {}, peers_[r]));
    }
    int ready = 0;
    while (ready < servers) {
      ASSIGN_OR_RETURN(Message m, scheduler_->Receive(kReplyTimeoutMs));
      if (m.header.op() == proto::SERVER_READY) ++ready;
    }
    return OkStatus();
  }

  std::unique_ptr<Socket> scheduler_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
  std::vector<Status> results_;  // sized before the threads start; one per server
  std::vector<std::string> peers_;
  std::vector<ServerEndpoint> endpoints_;
};

enum class Variant {
  kPushParams,    // Push(want_params) + WaitParams: one round trip per step
  kPushAckPull,   // Push + WaitAcks, then Pull + WaitParams: two round trips
};

const char* VariantName(Variant v) { return v == Variant::kPushParams ? "push+params" : "push/ack+pull"; }
const char* VariantKey(Variant v) { return v == Variant::kPushParams ? "push_params" : "push_ack_pull"; }

// One KvClient per window slot, all worker rank 0. Under BSP (window 1) every
// push completes step `step` and the reply must carry version step+1; under
// ASP each push is applied at once, so the step is not checked.
class TesseraPipeline : public Pipeline {
 public:
  static StatusOr<std::unique_ptr<TesseraPipeline>> Create(Transport* transport, const BenchCluster& cluster,
                                                           uint64_t keys, int window, Variant variant, bool bsp) {
    std::unique_ptr<TesseraPipeline> p(new TesseraPipeline(variant, bsp));
    p->grads_ = std::make_shared<std::vector<float>>(keys, 1e-3f);
    for (int i = 0; i < window; ++i) {
      auto client = std::make_unique<KvClient>(transport, cluster.endpoints(), /*rank=*/0, kJobId);
      RETURN_IF_ERROR(client->Connect());
      p->clients_.push_back(std::move(client));
      p->params_.emplace_back(keys);
    }
    return p;
  }

  int window() const override { return static_cast<int>(clients_.size()); }

  Status Issue(int slot) override {
    const int64_t step = bsp_ ? step_ : 0;
    return clients_[slot]->Push(step, /*examples=*/1, grads_, variant_ == Variant::kPushParams);
  }

  Status Complete(int slot) override {
    KvClient& c = *clients_[slot];
    if (variant_ == Variant::kPushAckPull) {
      RETURN_IF_ERROR(c.WaitAcks(kReplyTimeoutMs));
      RETURN_IF_ERROR(c.Pull(bsp_ ? step_ + 1 : 0));
    }
    int64_t version = -1;
    RETURN_IF_ERROR(c.WaitParams(params_[slot].data(), kReplyTimeoutMs, &version));
    if (bsp_) {
      if (version != step_ + 1) {
        return InternalError("BSP push for step " + std::to_string(step_) + " came back at version " +
                             std::to_string(version));
      }
      ++step_;
    }
    return OkStatus();
  }

 private:
  TesseraPipeline(Variant variant, bool bsp) : variant_(variant), bsp_(bsp) {}

  Variant variant_;
  bool bsp_;
  int64_t step_ = 0;
  std::shared_ptr<std::vector<float>> grads_;
  std::vector<std::unique_ptr<KvClient>> clients_;
  std::vector<std::vector<float>> params_;
};

// ---------------------------------------------------------------------------
// Reporting.

struct Row {
  size_t bytes = 0;
  int inflight = 1;
  int servers = 0;
  std::string variant;      // display name
  std::string variant_key;  // JSON
  std::string consistency;
  double raw_s = 0;      // seconds per round trip
  double tessera_s = 0;
};

class Reporter {
 public:
  Reporter(std::FILE* table, std::FILE* json) : table_(table), json_(json) {}

  void Header() {
    std::fprintf(table_, "%-8s %-8s %-14s %-4s %-7s %10s %12s %7s %11s %15s %9s\n", "size", "inflight", "variant",
                 "cons", "servers", "raw GB/s", "tessera GB/s", "ratio", "raw RTT us", "tessera RTT us", "diff us");
    std::fflush(table_);
  }

  void Add(const Row& r) {
    const double moved = 2.0 * static_cast<double>(r.bytes);
    // With K in flight, throughput is K round trips per (K x per-trip time).
    const double raw_gbps = moved / r.raw_s / 1e9;
    const double tes_gbps = moved / r.tessera_s / 1e9;
    const double ratio = tes_gbps / raw_gbps;
    char rtt[3][32] = {"-", "-", "-"};
    if (r.inflight == 1) {
      std::snprintf(rtt[0], sizeof(rtt[0]), "%.1f", r.raw_s * 1e6);
      std::snprintf(rtt[1], sizeof(rtt[1]), "%.1f", r.tessera_s * 1e6);
      std::snprintf(rtt[2], sizeof(rtt[2]), "%+.1f", (r.tessera_s - r.raw_s) * 1e6);
    }
    std::fprintf(table_, "%-8s %-8d %-14s %-4s %-7d %10.3f %12.3f %7.2f %11s %15s %9s\n", SizeName(r.bytes).c_str(),
                 r.inflight, r.variant.c_str(), r.consistency.c_str(), r.servers, raw_gbps, tes_gbps, ratio, rtt[0],
                 rtt[1], rtt[2]);
    std::fflush(table_);
    if (json_ != nullptr) {
      std::fprintf(json_,
                   "{\"bench\":\"kv\",\"size_bytes\":%zu,\"inflight\":%d,\"variant\":\"%s\",\"consistency\":\"%s\","
                   "\"servers\":%d,\"raw_gbps\":%.6f,\"tessera_gbps\":%.6f,\"ratio\":%.6f,"
                   "\"raw_rtt_us\":%.3f,\"tessera_rtt_us\":%.3f,\"diff_us\":%.3f}\n",
                   r.bytes, r.inflight, r.variant_key.c_str(), r.consistency.c_str(), r.servers, raw_gbps, tes_gbps,
                   ratio, r.raw_s * 1e6, r.tessera_s * 1e6, (r.tessera_s - r.raw_s) * 1e6);
      std::fflush(json_);
    }
  }

 private:
  std::FILE* table_;
  std::FILE* json_;
};

// ---------------------------------------------------------------------------
// Flags (parsed by hand: gflags would list every flag of the linked library).

bool ParseSize(const std::string& s, size_t* out) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (end == s.c_str()) return false;
  std::string suffix(end);
  size_t mult = 1;
  if (suffix == "K" || suffix == "KiB" || suffix == "k") {
    mult = 1 << 10;
  } else if (suffix == "M" || suffix == "MiB" || suffix == "m") {
    mult = 1 << 20;
  } else if (!suffix.empty() && suffix != "B") {
    return false;
  }
  *out = static_cast<size_t>(v) * mult;
  return *out >= 4 && *out % 4 == 0;
}

std::vector<std::string> SplitCommas(const std::string& s) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t comma = s.find(',', start);
    const size_t end = comma == std::string::npos ? s.size() : comma;
    if (end > start) parts.push_back(s.substr(start, end - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return parts;
}

Status ParseArgs(int argc, char** argv, BenchOptions* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value_of = [&](const std::string& name) -> const char* {
      return arg.rfind(name + "=", 0) == 0 ? arg.c_str() + name.size() + 1 : nullptr;
    };
    if (arg == "--curve") {
      o->curve = true;
    } else if (arg == "--quick") {
      o->seconds = 0.05;
      o->warmup_seconds = 0.02;
      o->min_round_trips = 3;
    } else if (arg == "--json") {
      o->json = true;
    } else if (const char* v = value_of("--json")) {
      o->json = true;
      o->json_path = v;
    } else if (const char* v = value_of("--seconds")) {
      o->seconds = std::atof(v);
      if (!(o->seconds > 0)) return InvalidArgumentError("--seconds must be > 0");
    } else if (const char* v = value_of("--inflight")) {
      o->inflight = std::atoi(v);
      if (o->inflight < 1 || o->inflight > 64) return InvalidArgumentError("--inflight must be in 1..64");
    } else if (const char* v = value_of("--servers")) {
      o->servers.clear();
      for (const std::string& s : SplitCommas(v)) {
        const int n = std::atoi(s.c_str());
        if (n < 1 || n > 16) return InvalidArgumentError("--servers entries must be in 1..16, got '" + s + "'");
        o->servers.push_back(n);
      }
      if (o->servers.empty()) return InvalidArgumentError("--servers is empty");
    } else if (const char* v = value_of("--sizes")) {
      o->sizes.clear();
      for (const std::string& s : SplitCommas(v)) {
        size_t bytes = 0;
        if (!ParseSize(s, &bytes)) return InvalidArgumentError("bad size '" + s + "' (e.g. 4K, 1M; multiple of 4)");
        o->sizes.push_back(bytes);
      }
      if (o->sizes.empty()) return InvalidArgumentError("--sizes is empty");
    } else if (arg == "--help" || arg == "-h") {
      return InvalidArgumentError(
          "usage: kv_bench [--quick] [--json[=PATH]] [--seconds=S] [--inflight=K] [--servers=1,2] "
          "[--sizes=4K,64K,1M,16M] [--curve]");
    } else {
      return InvalidArgumentError("unknown argument '" + arg + "' (try --help)");
    }
  }
  return OkStatus();
}

// ---------------------------------------------------------------------------

// One measured configuration: a pipeline (raw, or a KvClient set with its own
// cluster) and its repetitions.
struct Case {
  Row row;
  std::unique_ptr<BenchCluster> cluster;  // null for raw
  std::unique_ptr<Pipeline> pipeline;
  std::vector<double> reps;  // seconds per round trip
};

// Measures every case of one (size, window): warm-up each, then kRepetitions
// rounds that run each case once in turn, so that drift in the machine's
// load (a shared VM, other processes) hits raw and Tessera alike.
Status RunCases(const BenchOptions& options, std::vector<Case>* cases) {
  for (Case& c : *cases) {
    ASSIGN_OR_RETURN(double ignored, TimeRoundTrips(c.pipeline.get(), options.warmup_seconds,
                                                    2 * c.pipeline->window()));
    (void)ignored;
  }
  for (int r = 0; r < kRepetitions; ++r) {
    for (Case& c : *cases) {
      ASSIGN_OR_RETURN(double s, TimeRoundTrips(c.pipeline.get(), options.seconds, options.min_round_trips));
      c.reps.push_back(s);
    }
  }
  return OkStatus();
}

// Builds the cases of one (size, window): raw first, then Tessera for each
// server count (and, with one request in flight, each variant).
Status BuildCases(Transport* transport, const BenchKeys* curve, zmq::socket_t* raw_socket, const BenchOptions& options,
                  size_t bytes, int window, std::vector<Case>* cases) {
  Case raw;
  raw.pipeline = std::make_unique<RawPipeline>(raw_socket, bytes, window);
  cases->push_back(std::move(raw));
  const uint64_t keys = bytes / sizeof(float);
  // One request in flight: BSP, as training runs. Several: ASP, since a BSP
  // server refuses a second push for a step from the one worker.
  const proto::Consistency consistency = window == 1 ? proto::BSP : proto::ASP;
  std::vector<Variant> variants = {Variant::kPushParams};
  if (window == 1) variants.push_back(Variant::kPushAckPull);
  for (int servers : options.servers) {
    for (Variant variant : variants) {
      Case c;
      c.row.bytes = bytes;
      c.row.inflight = window;
      c.row.servers = servers;
      c.row.variant = VariantName(variant);
      c.row.variant_key = VariantKey(variant);
      c.row.consistency = proto::Consistency_Name(consistency);
      ASSIGN_OR_RETURN(c.cluster, BenchCluster::Start(transport, servers, keys, consistency, curve));
      // Pushed before the pipeline is made, so a failure below still shuts the cluster down.
      cases->push_back(std::move(c));
      ASSIGN_OR_RETURN(cases->back().pipeline,
                       TesseraPipeline::Create(transport, *cases->back().cluster, keys, window, variant,
                                               consistency == proto::BSP));
    }
  }
  return OkStatus();
}

// Closes the clients, then shuts the clusters down; the first error.
Status TearDown(std::vector<Case>* cases) {
  Status first;
  for (Case& c : *cases) {
    c.pipeline.reset();
    if (c.cluster == nullptr) continue;
    Status s = c.cluster->Shutdown();
    if (first.ok() && !s.ok()) first = s.WithContext("server");
  }
  cases->clear();
  return first;
}

Status RunBench(const BenchOptions& options) {
  std::FILE* json = nullptr;
  std::FILE* table = stdout;
  if (options.json) {
    if (options.json_path.empty()) {
      json = stdout;
      table = stderr;
    } else {
      json = std::fopen(options.json_path.c_str(), "w");
      if (json == nullptr) return NotFoundError("cannot write " + options.json_path);
    }
  }
  Reporter reporter(table, json);
  std::fprintf(table,
               "kv_bench: one worker, loopback TCP%s; GB/s = 2 x value size per round trip / time (1e9 B/s); "
               "median of %d x %.2g s, raw and Tessera interleaved\n",
               options.curve ? " (Tessera with CURVE, raw plain)" : "", kRepetitions, options.seconds);
  reporter.Header();

  RawEcho echo;
  zmq::context_t raw_context(1);
  zmq::socket_t raw_socket(raw_context, zmq::socket_type::dealer);
  raw_socket.set(zmq::sockopt::linger, 0);
  raw_socket.connect(echo.endpoint());

  std::optional<BenchKeys> curve;
  if (options.curve) {
    ASSIGN_OR_RETURN(curve, MakeBenchKeys());
  }
  // The worker's (and the fake scheduler's) ZeroMQ context.
  auto transport =
      curve.has_value() ? std::make_unique<ZmqTransport>(curve->BenchSide()) : std::make_unique<ZmqTransport>();
  Status status;
  for (size_t bytes : options.sizes) {
    std::vector<int> windows = {1};
    if (options.inflight > 1) windows.push_back(options.inflight);
    for (int window : windows) {
      std::vector<Case> cases;
      status = BuildCases(transport.get(), curve.has_value() ? &*curve : nullptr, &raw_socket, options, bytes, window,
                          &cases);
      if (status.ok()) status = RunCases(options, &cases);
      if (status.ok()) {
        const double raw_s = Median(cases[0].reps);
        for (size_t i = 1; i < cases.size(); ++i) {
          cases[i].row.raw_s = raw_s;
          cases[i].row.tessera_s = Median(cases[i].reps);
          reporter.Add(cases[i].row);
        }
      }
      Status down = TearDown(&cases);
      if (status.ok()) status = down;
      if (!status.ok()) {
        status = status.WithContext(SizeName(bytes) + ", " + std::to_string(window) + " in flight");
        break;
      }
    }
    if (!status.ok()) break;
  }
  raw_socket.close();
  if (json != nullptr && json != stdout) std::fclose(json);
  return status;
}

}  // namespace
}  // namespace tessera

int main(int argc, char** argv) {
  FLAGS_logtostderr = true;
  FLAGS_minloglevel = 1;  // warnings and up: servers log every start at INFO
  google::InitGoogleLogging(argv[0]);
  tessera::BenchOptions options;
  tessera::Status s = tessera::ParseArgs(argc, argv, &options);
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.message().c_str());
    return 2;
  }
  s = tessera::RunBench(options);
  if (!s.ok()) {
    std::fprintf(stderr, "kv_bench failed: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
