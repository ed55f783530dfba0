// What a job reports about itself: the lines of RUN_DIR/metrics.jsonl, one
// per event as it happens (MetricsLog), and the figures summary.json gives
// at the end (JobResults, SummaryJson). Not thread-safe: the scheduler's
// event loop owns them.
#ifndef TESSERA_SCHEDULER_JOB_METRICS_H_
#define TESSERA_SCHEDULER_JOB_METRICS_H_

#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/json.h"
#include "core/status.h"
#include "core/task_metrics.h"
#include "proto/job.pb.h"
#include "proto/wire.pb.h"
#include "scheduler/early_stopping.h"
#include "scheduler/job_shape.h"

namespace tessera {

// RUN_DIR/metrics.jsonl, appended to (a resumed run goes on in the same file).
class MetricsLog {
 public:
  MetricsLog() = default;
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  // Opens RUN_DIR/metrics.jsonl; with an empty `run_dir` nothing is written.
  // Unavailable naming the file when it cannot be opened.
  Status Open(const std::string& run_dir);
  // Appends `line` and flushes it, so a reader sees every event at once.
  void Record(const JsonObject& line);

 private:
  FILE* file_ = nullptr;
};

// The figures of a job, added up as its phases end.
struct JobResults {
  // Training epochs this process ran: their time and examples (a lost
  // worker's before it was lost included), the first apart (warm-up:
  // allocation, first-touch page faults, primitive creation).
  double train_seconds = 0;
  int64_t trained_examples = 0;
  int epochs_timed = 0;
  double first_epoch_seconds = 0;
  int64_t first_epoch_examples = 0;
  std::vector<int64_t> examples_by_epoch;  // counted (skipped ones too), per training epoch run
  double last_train_loss = 0, test_accuracy = 0, test_loss = 0;
  std::string params_sha256;  // the reporting worker's, of the newest parameters
  // Summed over workers and phases: time split, and (training) bytes and the steps that pushed them.
  double compute_seconds = 0, communication_seconds = 0, push_seconds = 0;
  uint64_t push_bytes = 0, pull_bytes = 0;
  int64_t pushing_steps = 0;
  // The largest peak resident set size any worker reported (training and
  // evaluation), in bytes; 0 when none did.
  uint64_t worker_peak_rss_bytes = 0;
  int workers_lost = 0, workers_joined = 0;
  // SSP: steps_by_staleness[k], the training steps (all workers, all
  // phases) that trained on parameters k steps old; empty otherwise.
  std::vector<int64_t> steps_by_staleness;
  // The newest evaluation's figures per class, when every worker sent its
  // counts (multi-class), or its binary or regression metrics likewise.
  std::optional<ClassificationResult> classification;
  std::optional<BinaryResult> binary;
  std::optional<RegressionResult> regression;
  // With a validation split: the best epoch so far by the validation metric
  // (none before the first validation that is not NaN), the metric's name,
  // and the epoch (1-based) after which early stopping ended training (0:
  // training ran every epoch).
  std::optional<BestSoFar> best;
  std::string best_metric;
  int stopped_early_after_epoch = 0;
  // Each server rank's newest admission and expiry counts of the sparse
  // tables (from its CHECKPOINT_DONE), by rank.
  std::map<int, std::vector<proto::SparseTableCounts>> sparse_table_counts;

  // One training epoch ended after `seconds`, having trained `examples`.
  void AddEpoch(double seconds, int64_t examples);
  // A worker's report of a phase part (`training`: not an evaluation).
  void AddWorkerReport(const proto::PhaseDone& report, bool training);
  // A server's counts, in the CHECKPOINT_DONE `h` it sent (none: kept as they were).
  void AddSparseTableCounts(int server_rank, const proto::Header& h);
  // A worker's SSP counts of steps by staleness (Header.staleness_steps).
  void AddStaleness(std::span<const int64_t> steps_by_staleness);
  // The largest staleness any step trained with (0 when none was counted).
  int64_t MaxStaleness() const;
  // Training examples per second, the first epoch left out when there are more.
  double SteadySamplesPerSec() const;
};

// The workers' progress reports inside a training epoch: the furthest step
// reported, the step rate (over windows of at least a second: reports of
// different workers handled back to back make shorter ones meaningless),
// and a "progress" line for metrics.jsonl at most every half second.
class EpochProgress {
 public:
  // What a progress line says beside the reports.
  struct Context {
    int epoch = 0, epochs = 1;        // the training epoch (0-based) and how many the job has
    int64_t train_examples = 1;       // in an epoch
    double trained_seconds = 0;       // in the epochs before this one
    Clock::TimePoint epoch_start, job_start;
  };
  // A training epoch starts: its window and count begin at `now`.
  void EpochStarted(Clock::TimePoint now);
  // A phase part starts at global step `step`: the furthest step so far.
  void PartStarted(int64_t step) { latest_step_ = step; }
  // One worker's report; a progress line when half a second has gone by since the last.
  std::optional<JsonObject> Report(const proto::Progress& p, const Context& context, Clock::TimePoint now);
  int64_t latest_step() const { return latest_step_; }
  double steps_per_second() const { return steps_per_second_; }

 private:
  int64_t latest_step_ = 0;
  double steps_per_second_ = 0;
  int64_t rate_step_ = 0;
  Clock::TimePoint rate_time_;
  // Since the last line.
  int64_t window_examples_ = 0;
  double window_loss_ = 0;
  Clock::TimePoint window_start_;
  int64_t epoch_examples_ = 0;  // reported in this epoch
};

// What summary.json holds.
struct SummaryFacts {
  int64_t steps = 0;
  double wall_seconds = 0;
  int64_t resumed_from_step = -1;
  int server_rollbacks = 0;
  // The committed checkpoint cut at the end of the best epoch ("": none).
  std::string best_checkpoint;
};

// What a run directory's metrics.jsonl says happened before a resume: the
// workers lost and joined and the servers' rollbacks, in every earlier run
// of the job (a rollback's, a restart's, an earlier session's), the
// example count of each of the first `epochs_done` epochs (the last line of
// each: an epoch run again after a rollback counts once), and the state of
// the best epoch and early stopping that the last evaluation of the
// validation set among those epochs recorded. Lines it cannot read are
// skipped; a missing file is an empty history.
struct JobHistory {
  int workers_lost = 0, workers_joined = 0, server_rollbacks = 0;
  std::vector<int64_t> examples_by_epoch;
  int validated_epochs = 0;       // the last of those epochs (1-based) whose validation it holds; 0: none
  std::optional<BestSoFar> best;  // that validation's state; none without one
};
JobHistory ReadJobHistory(const std::string& metrics_path, int epochs_done);

// summary.json's text for a finished job.
std::string SummaryJson(const proto::JobSpec& spec, const JobShape& shape, const JobResults& results,
                        const SummaryFacts& facts);

}  // namespace tessera

#endif  // TESSERA_SCHEDULER_JOB_METRICS_H_
