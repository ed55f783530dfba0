// The worker role: registers with the scheduler, loads the data, then runs
// the phases the scheduler starts — training epochs (forward and backward on
// leased shards, push gradients, pull parameters) and evaluations — until
// SHUTDOWN.
//
// Single-threaded; Run() blocks.
#ifndef TESSERA_WORKER_WORKER_H_
#define TESSERA_WORKER_WORKER_H_

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <string>

#include "core/dataset.h"
#include "core/drop_log.h"
#include "core/heartbeat.h"
#include "core/status.h"
#include "core/transport.h"
#include "models/model.h"
#include "proto/wire.pb.h"
#include "worker/example_reader.h"
#include "worker/kv_client.h"
#include "worker/worker_sparse_table.h"

namespace tessera {

// Evaluation reads batches of max(batch_size, kMinEvalBatch) examples.
inline constexpr int kMinEvalBatch = 256;

struct WorkerOptions {
  // Scheduler address, "HOST:PORT". Required.
  std::string scheduler;
  // The cluster's secret, sent in REGISTER (the scheduler's --cluster_token_file). Default none.
  std::string cluster_token;
  // With CURVE: the scheduler's public key, to connect to it. Default none.
  std::string scheduler_public_key;
  // OpenBLAS threads; 0 = what the cores allow. Default 0.
  int threads = 0;
  // Where the model computes (ResolveDevice gives it from --device). Default the CPU.
  Device device = Device::kCpu;
  // The device was chosen by --device auto: a model with a layer `device`
  // cannot run (CheckDeviceLayers: sparse_linear on CUDA) then runs on the
  // CPU instead of failing. Default false.
  bool device_auto = false;
  // Push each layer's gradients as soon as backward has produced them
  // (true), or the whole gradient after backward (false). Default true.
  bool overlap_push = true;
  // On CUDA: copy each layer's parameters to the device as soon as their
  // PARAMS are in (Model::ParamsArrived), while the rest still comes (true),
  // or all of them at the start of the next step (false). Default true.
  bool overlap_pull = true;
  // Give up when the cluster map has not come by then. Default 120 s.
  int register_timeout_s = 120;
  // Give up on a server or the scheduler silent for this long. Default 120 s.
  int reply_timeout_s = 120;
  // When set, worker rank 0 writes the final parameters here at the end
  // (raw little-endian float32 in key order; docs/FORMATS.md). Default none.
  std::string params_out;
  // Tests only: the worker of rank test_step_delay_rank sleeps this long
  // before each training step, so that under SSP the others run ahead of it
  // (`tessera worker --test_step_delay_ms`, hidden). Default 0: none.
  std::chrono::milliseconds test_step_delay{0};
  int test_step_delay_rank = 0;
};

class Worker {
 public:
  // *transport and *stop must outlive this. Setting *stop ends Run().
  Worker(Transport* transport, WorkerOptions options, const std::atomic<bool>* stop)
      : transport_(transport), options_(std::move(options)), stop_(stop) {}

  // OK after a SHUTDOWN without reason; the error that stopped it otherwise.
  Status Run();

 private:
  // Registers, waits for the cluster map and runs phases until SHUTDOWN (or
  // a ROLLBACK, which Run() answers by joining again).
  Status JoinAndTrain();
  Status LoadData(const proto::DataSpec& data);
  Status Setup(const proto::Header& map_message);
  // One training epoch (or the rest of it), its steps below.
  Status RunTraining(const proto::Phase& phase);
  struct TrainingPhase;  // worker.cc
  // BSP: pulls the parameters as of the phase's first step unless the model
  // holds them already (this worker joined late, or the job resumed).
  Status PullParamsForPhaseStart(const proto::Phase& phase);
  // Asks for leases until one has positions left to read, or none is left
  // (t->data_left false). DataLoss for a lease outside the training set.
  Status LeaseShardIfDone(TrainingPhase* t);
  // Passes over one step done before a resume, without computing it.
  void SkipStep(TrainingPhase* t);
  // Reads the next batch of the lease into t->x and t->labels; returns its
  // count (0 without data).
  StatusOr<int64_t> ReadBatch(TrainingPhase* t);
  // Waits for the parameters after the step pushed last, asking (with sparse
  // pulls) for the rows the batch just read needs; read_start: when reading it began.
  Status AwaitParamsForBatch(TrainingPhase* t, int64_t count, std::chrono::steady_clock::time_point read_start);
  // As above; `next_rows` nullptr at the phase's end: every row then, so that
  // the worker's parameters are the servers'. `read_seconds`: time spent since
  // the push reading the next batch. Ends the pushed step's accounting.
  Status AwaitParams(TrainingPhase* t, const std::vector<KeyRange>* next_rows, double read_seconds);
  // Forward, backward and the push of the step's gradients.
  Status ComputeAndPush(TrainingPhase* t, int64_t count);
  // PROGRESS to the scheduler, at most every kProgressInterval unless forced.
  Status ReportProgress(TrainingPhase* t, bool force);
  // PHASE_DONE with the phase's totals.
  Status SendTrainingDone(const TrainingPhase& t);
  Status RunEvaluation(const proto::Phase& phase);
  // Bytes of tensor frames pushed and pulled so far, dense and sparse.
  uint64_t PushedBytes() const;
  uint64_t PulledBytes() const;
  // Reads a SHUTDOWN or ROLLBACK from the scheduler during a wait for the
  // servers (true: the wait ends); keeps anything else for later.
  bool OnSchedulerMessage();
  // Asks the scheduler for a shard; *lease.shard() is -1 when none is left.
  Status RequestLease(int epoch, proto::Lease* lease);
  // Waits for the next message from the scheduler of op `op` (SHUTDOWN and ROLLBACK end the wait with Aborted).
  StatusOr<Message> WaitScheduler(proto::Op op, int timeout_ms);
  Status SendToScheduler(proto::Header h);
  // Aborted on a stop signal, Unavailable once the scheduler is lost.
  Status CheckStop() const;

  Transport* transport_;
  WorkerOptions options_;
  const std::atomic<bool>* stop_;
  std::string scheduler_endpoint_;
  std::unique_ptr<HeartbeatSender> heartbeat_;  // from the cluster map on
  std::unique_ptr<Socket> scheduler_;
  std::unique_ptr<KvClient> kv_;
  // The model's sparse table (a sparse_embedding first layer); null without.
  std::unique_ptr<WorkerSparseTable> sparse_;
  proto::ClusterMap map_;
  uint64_t job_id_ = 0;
  int rank_ = -1;
  std::unique_ptr<ExampleReader> train_, validation_, test_;  // validation_: null without a validation split
  int64_t validation_count() const { return validation_ == nullptr ? 0 : validation_->count(); }
  std::unique_ptr<Model> model_;
  // The version of the parameters in model_ (BSP: the global step they are at).
  int64_t params_version_ = -1;
  // Scheduler messages that came while waiting for parameters.
  std::deque<Message> inbox_;
  bool shutdown_received_ = false;
  std::string shutdown_reason_;
  bool rollback_received_ = false;
  std::string rollback_reason_;
  // The lines of dropped scheduler messages, rate-limited.
  DropLog drops_{SystemClock()};
};

}  // namespace tessera

#endif  // TESSERA_WORKER_WORKER_H_
