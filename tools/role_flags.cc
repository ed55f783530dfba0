#include "tools/role_flags.h"

#include <glog/logging.h>

#include <iostream>

#include "core/file_util.h"
#include "tools/command.h"
#include "tools/signals.h"

DEFINE_string(spec, "", "job spec file (protobuf text format)");
DEFINE_string(host, "",
              "address to bind (scheduler default 127.0.0.1, 0.0.0.0 with CURVE keys; server default 127.0.0.1, also "
              "advertised to workers; serve default 127.0.0.1)");
DEFINE_int32(port, -1, "port to bind; 0 lets the OS pick (scheduler default 7000, server default 0, serve default 8500)");
DEFINE_string(port_file, "", "scheduler: write the bound port to this file once listening");
DEFINE_string(run_dir, "", "run directory: metrics.jsonl, summary.json and checkpoints/ (train/resume also logs/; train default: runs/NAME-TIMESTAMP; a scheduler without one takes no checkpoints)");
DEFINE_int32(register_timeout, 120, "seconds to wait for the cluster to form, for a spare server or standby worker to be given a place, and for a worker after every one was lost, before giving up");
DEFINE_string(scheduler, "", "scheduler address HOST:PORT");
DEFINE_string(spill_dir, "", "server: where sparse tables with a memory_budget_mb keep the rows beyond it, on this machine's disk (each table in a directory of its own, removed when the server exits; default: a new directory under $TMPDIR)");
DEFINE_int32(threads, 0, "compute threads per worker (0: worker: as many as the cores allow; train/resume/export: the cores divided among the workers)");
DEFINE_bool(overlap_push, true,
            "workers push each layer's gradients as soon as backward has made them (false: all after backward)");
DEFINE_bool(overlap_pull, true,
            "on a GPU, workers copy each layer's parameters to the device as soon as they have arrived "
            "(false: all at the start of the next step)");
DEFINE_string(device, "auto", "where workers compute: auto (a CUDA GPU when there is one, else the CPU), cpu, cuda");
DEFINE_string(params_out, "", "worker: the reporting worker (the lowest rank still taking part) writes the final parameters here (raw float32, key order)");
DEFINE_string(progress, "auto", "progress display: auto (live line on a terminal, plain lines otherwise), live, plain, none");
DEFINE_string(launcher_token_file, "",
              "scheduler: a file holding the secret the local launcher's NODE_EXITED messages carry (tessera "
              "train writes one, mode 0600); without it the scheduler takes no word of exits, only missed heartbeats");
DEFINE_string(cluster_token_file, "",
              "scheduler: admit only servers and workers whose REGISTER carries the secret in this file; server, "
              "worker: send it (tessera train gives its cluster one, mode 0600; without it any process that reaches "
              "the scheduler's port may join)");
DEFINE_string(resume_from, "", "scheduler: continue the job from this checkpoint (a checkpoint directory, or a run directory or its checkpoints/latest for the newest intact one)");
DEFINE_int32(max_restarts, 3,
             "train/resume: when a server dies, start a replacement server and roll the job back to the newest "
             "checkpoint, and when the scheduler dies, restart every process from it, this many times at most in all; "
             "when a worker dies, start a replacement worker, this many at most per launch of the cluster; scheduler: "
             "when a server is lost, roll the job back to the newest checkpoint and wait for a replacement server this many times at most");
DEFINE_int32(test_checkpoint_write_delay_ms, 0,
             "tests only (left out of the help): a server holds each checkpoint part this long after its files are "
             "written before it reports it; train passes it to its servers");
DEFINE_int32(test_step_delay_ms, 0,
             "tests only (left out of the help): the worker of rank --test_step_delay_rank sleeps this long before "
             "each training step, so it lags the others; train passes both to its workers");
DEFINE_int32(test_step_delay_rank, 0, "tests only (left out of the help): the rank --test_step_delay_ms slows");
DEFINE_int64(test_spill_writes_before_full, -1,
             "tests only (left out of the help): after this many rows written to a sparse table's spill database, a "
             "server's further spill writes fail as on a full disk; train passes it to its servers");
DEFINE_int64(test_spill_free_bytes, -1,
             "tests only (left out of the help): the scheduler of a local job takes this for the free space of the "
             "run directory's disk, where its servers spill; train passes it to its scheduler");
DEFINE_bool(json, false, "print JSON instead of text");
DEFINE_int32(reply_timeout, 120, "seconds a worker waits for a server or the scheduler before giving up");
DEFINE_bool(force, false,
            "start the workers even when they are more than this machine can run (without it, a local job may have "
            "at most 4 workers per core, and only as many as the available memory holds, each loading the data set)");

DEFINE_string(curve_secret_key, "",
              "this node's CURVE secret key (a NAME.secret file from tessera keygen): every socket of the role is "
              "then authenticated and encrypted with CurveZMQ (default: none, plain TCP on loopback only)");
DEFINE_string(curve_allow_keys, "",
              "scheduler, server with --curve-secret-key: the public keys they admit, NAME.pub files concatenated "
              "(every other node is refused and logged)");
DEFINE_string(scheduler_public_key, "",
              "server, worker with --curve-secret-key: the scheduler's public key (its NAME.pub file)");
DEFINE_bool(curve, false,
            "train/resume: authenticate and encrypt every socket of the local cluster with CurveZMQ, on keys made "
            "for the launch in RUN/keys (default false: plain TCP; both stay on 127.0.0.1)");
DEFINE_bool(insecure, false,
            "scheduler, server: allow binding an address beyond loopback without CURVE keys (anyone who reaches "
            "the port may join; a warning is logged)");

namespace tessera {

int FinishRole(const char* role, const Status& status) {
  if (status.ok()) return kExitOk;
  if (StopSignal() != 0 && status.code() == StatusCode::kAborted) {
    LOG(INFO) << role << " stopped by signal " << StopSignal() << ": " << status.message();
    return kExitInterrupted;
  }
  LOG(ERROR) << role << " failed: " << status.ToString();
  std::cerr << "tessera " << role << ": " << status.message() << std::endl;
  const bool users_mistake = status.code() == StatusCode::kInvalidArgument || status.code() == StatusCode::kNotFound;
  if (users_mistake) return kExitUsage;
  const bool permanent = status.code() == StatusCode::kResourceExhausted || status.code() == StatusCode::kDataLoss;
  return permanent ? kExitPermanent : kExitFailure;
}

StatusOr<std::string> ReadTokenFlag(const std::string& flag, const std::string& path) {
  if (path.empty()) return std::string();
  auto token = ReadFileToString(path);
  if (!token.ok() || token->empty()) return InvalidArgumentError(flag + ": cannot read a token from " + path);
  return *token;
}

StatusOr<std::optional<CurveSettings>> CurveFlags(bool binds, bool connects, std::string* scheduler_key) {
  const auto needs = [](const char* flag) {
    return InvalidArgumentError(std::string(flag) + " is required with --curve-secret-key");
  };
  if (FLAGS_curve_secret_key.empty()) {
    if (!FLAGS_curve_allow_keys.empty()) return InvalidArgumentError("--curve-allow-keys needs --curve-secret-key");
    if (!FLAGS_scheduler_public_key.empty()) {
      return InvalidArgumentError("--scheduler-public-key needs --curve-secret-key");
    }
    return std::optional<CurveSettings>();
  }
  if (!CurveAvailable()) return InvalidArgumentError("--curve-secret-key: this libzmq was built without CURVE");
  CurveSettings curve;
  auto keys = ReadCurveSecretKey(FLAGS_curve_secret_key);
  if (!keys.ok()) return keys.status().WithContext("--curve-secret-key");
  curve.keys = *keys;
  if (binds) {
    if (FLAGS_curve_allow_keys.empty()) return needs("--curve-allow-keys");
    auto allowed = ReadCurveAllowList(FLAGS_curve_allow_keys);
    if (!allowed.ok()) return allowed.status().WithContext("--curve-allow-keys");
    curve.allowed = *allowed;
  }
  if (connects) {
    if (FLAGS_scheduler_public_key.empty()) return needs("--scheduler-public-key");
    auto key = ReadCurvePublicKey(FLAGS_scheduler_public_key);
    if (!key.ok()) return key.status().WithContext("--scheduler-public-key");
    *scheduler_key = *key;
  }
  return std::optional<CurveSettings>(std::move(curve));
}

Status CheckBindHost(const std::string& host, bool curve) {
  const bool loopback = host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
  if (loopback || curve) return OkStatus();
  if (!FLAGS_insecure) {
    return InvalidArgumentError("--host " + host +
                                " is beyond loopback: give CURVE keys (--curve-secret-key, see tessera keygen), or "
                                "--insecure to accept any node that reaches the port");
  }
  LOG(WARNING) << "INSECURE: listening on " << host
               << " without CURVE: any process that reaches the port can join the cluster and read its traffic";
  return OkStatus();
}

std::unique_ptr<ZmqTransport> MakeTransport(std::optional<CurveSettings> curve) {
  if (!curve.has_value()) return std::make_unique<ZmqTransport>();
  LOG(INFO) << "CURVE on: public key " << curve->keys.public_key << ", " << curve->allowed.size()
            << " public keys admitted";
  return std::make_unique<ZmqTransport>(std::move(*curve));
}

StatusOr<int> PortFlag(const ParsedArgs& args, int default_port) {
  if (args.set_flags.count("port") == 0) return default_port;
  if (FLAGS_port < 0 || FLAGS_port > 65535) {
    return InvalidArgumentError("--port must be in [0, 65535] (0: any free port), got " + std::to_string(FLAGS_port));
  }
  return FLAGS_port;
}

}  // namespace tessera
