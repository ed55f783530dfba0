#include "scheduler/job_metrics.h"

#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>

namespace tessera {

namespace {

bool IsInteger(const nlohmann::json& line, const char* key) {
  return line.contains(key) && line[key].is_number_integer();
}

// The best epoch and early-stopping state a validation line records (FinishValidation).
std::optional<BestSoFar> BestOfLine(const nlohmann::json& line) {
  if (!IsInteger(line, "evaluations_without_improvement")) return std::nullopt;
  BestSoFar best;
  best.evaluations_without_improvement = line["evaluations_without_improvement"];
  if (!line.contains("best_epoch")) return best;  // no best yet
  if (!IsInteger(line, "best_epoch") || !IsInteger(line, "best_step") || !line.contains("best_value") ||
      !line["best_value"].is_number()) {
    return std::nullopt;
  }
  best.epoch = static_cast<int>(line["best_epoch"].get<int64_t>()) - 1;
  best.step = line["best_step"];
  best.value = line["best_value"];
  return best;
}

}  // namespace

JobHistory ReadJobHistory(const std::string& metrics_path, int epochs_done) {
  JobHistory history;
  history.examples_by_epoch.assign(std::max(0, epochs_done), 0);
  std::ifstream in(metrics_path);
  std::string text;
  while (std::getline(in, text)) {
    const nlohmann::json line = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!line.is_object() || !line.contains("event") || !line["event"].is_string()) continue;
    const std::string event = line["event"];
    if (event == "worker_lost") ++history.workers_lost;
    if (event == "worker_joined") ++history.workers_joined;
    if (event == "rollback") ++history.server_rollbacks;
    if (event == "eval" && line.value("set", "") == "validation" && IsInteger(line, "epoch")) {
      const int64_t epoch = line["epoch"];
      const std::optional<BestSoFar> best = BestOfLine(line);
      // The latest line of the latest epoch wins: an epoch validated again after a rollback recorded it anew.
      if (epoch >= std::max(1, history.validated_epochs) && epoch <= epochs_done && best.has_value()) {
        history.validated_epochs = static_cast<int>(epoch);
        history.best = best;
      }
    }
    if (event != "epoch" || !line.contains("epoch") || !line.contains("examples")) continue;
    if (!line["epoch"].is_number_integer() || !line["examples"].is_number_integer()) continue;
    const int64_t epoch = line["epoch"];
    if (epoch >= 1 && epoch <= epochs_done) history.examples_by_epoch[epoch - 1] = line["examples"];
  }
  return history;
}


MetricsLog::~MetricsLog() {
  if (file_ != nullptr) fclose(file_);
}

Status MetricsLog::Open(const std::string& run_dir) {
  if (run_dir.empty()) return OkStatus();
  const std::string path = run_dir + "/metrics.jsonl";
  file_ = fopen(path.c_str(), "a");
  if (file_ == nullptr) return UnavailableError("cannot open " + path);
  return OkStatus();
}

void MetricsLog::Record(const JsonObject& line) {
  if (file_ == nullptr) return;
  fputs((line.ToString() + "\n").c_str(), file_);
  fflush(file_);
}

namespace {

constexpr auto kProgressInterval = std::chrono::milliseconds(500);

double Seconds(Clock::Duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

void EpochProgress::EpochStarted(Clock::TimePoint now) {
  window_start_ = now;
  epoch_examples_ = 0;
}

std::optional<JsonObject> EpochProgress::Report(const proto::Progress& p, const Context& context,
                                                Clock::TimePoint now) {
  window_examples_ += p.examples();
  window_loss_ += p.loss_sum();
  epoch_examples_ += p.examples();
  if (p.step() > latest_step_) {
    if (rate_step_ == 0) {
      rate_step_ = p.step();
      rate_time_ = now;
    } else if (Seconds(now - rate_time_) >= 1.0) {
      steps_per_second_ = (p.step() - rate_step_) / Seconds(now - rate_time_);
      rate_step_ = p.step();
      rate_time_ = now;
    }
    latest_step_ = p.step();
  }
  if (now - window_start_ < kProgressInterval) return std::nullopt;
  const double window = Seconds(now - window_start_);
  const double done =
      (static_cast<double>(context.epoch) + static_cast<double>(epoch_examples_) / context.train_examples) /
      context.epochs;
  const double elapsed_training = context.trained_seconds + Seconds(now - context.epoch_start);
  JsonObject line;
  line.Add("event", "progress")
      .Add("epoch", context.epoch + 1)
      .Add("epochs", context.epochs)
      .Add("step", latest_step_)
      .Add("loss", window_examples_ > 0 ? window_loss_ / window_examples_ : 0.0)
      .Add("samples_per_sec", window_examples_ / window)
      .Add("fraction", done)
      .Add("eta_seconds", done > 0 ? elapsed_training * (1 - done) / done : 0.0)
      .Add("elapsed_seconds", Seconds(now - context.job_start));
  window_examples_ = 0;
  window_loss_ = 0;
  window_start_ = now;
  return line;
}

void JobResults::AddEpoch(double seconds, int64_t examples) {
  train_seconds += seconds;
  trained_examples += examples;
  if (epochs_timed++ == 0) {
    first_epoch_seconds = seconds;
    first_epoch_examples = examples;
  }
}

void JobResults::AddWorkerReport(const proto::PhaseDone& report, bool training) {
  compute_seconds += report.compute_seconds();
  communication_seconds += report.communication_seconds();
  push_seconds += report.push_seconds();
  worker_peak_rss_bytes = std::max(worker_peak_rss_bytes, report.peak_rss_bytes());
  if (training) {
    push_bytes += report.push_bytes();
    pull_bytes += report.pull_bytes();
    pushing_steps += report.pushed_steps();
  }
}

void JobResults::AddSparseTableCounts(int server_rank, const proto::Header& h) {
  if (h.sparse_table_counts_size() == 0) return;
  sparse_table_counts[server_rank].assign(h.sparse_table_counts().begin(), h.sparse_table_counts().end());
}

void JobResults::AddStaleness(std::span<const int64_t> counts) {
  if (steps_by_staleness.size() < counts.size()) steps_by_staleness.resize(counts.size(), 0);
  for (size_t k = 0; k < counts.size(); ++k) steps_by_staleness[k] += counts[k];
}

int64_t JobResults::MaxStaleness() const {
  for (size_t k = steps_by_staleness.size(); k > 0; --k) {
    if (steps_by_staleness[k - 1] > 0) return static_cast<int64_t>(k - 1);
  }
  return 0;
}

double JobResults::SteadySamplesPerSec() const {
  // Past the first epoch when there is more than one; a one-epoch job has only its first.
  if (epochs_timed > 1 && train_seconds > first_epoch_seconds) {
    return (trained_examples - first_epoch_examples) / (train_seconds - first_epoch_seconds);
  }
  return train_seconds > 0 ? trained_examples / train_seconds : 0.0;
}

namespace {

// With a validation split: its size, the best epoch and whether early stopping ended training.
void AddBestEpoch(const JobShape& shape, const JobResults& r, const SummaryFacts& facts, JsonObject* s) {
  s->Add("validation_examples", shape.validation_examples);
  if (r.best.has_value() && r.best->epoch >= 0) {
    JsonObject metric;
    metric.Add("name", r.best_metric).AddFloat64("value", r.best->value);
    s->Add("best_epoch", r.best->epoch + 1).Add("best_step", r.best->step).Add("best_metric", metric);
  } else {
    s->AddNull("best_epoch").AddNull("best_step").AddNull("best_metric");
  }
  if (facts.best_checkpoint.empty()) {
    s->AddNull("best_checkpoint");
  } else {
    s->Add("best_checkpoint", facts.best_checkpoint);
  }
  s->Add("stopped_early", r.stopped_early_after_epoch > 0);
  if (r.stopped_early_after_epoch > 0) {
    s->Add("stopped_at_epoch", r.stopped_early_after_epoch);
  } else {
    s->AddNull("stopped_at_epoch");
  }
}

// Each sparse table's admission and expiry counts summed over the servers:
// {"NAME": {"ids_refused": ..., "rows_admitted": ..., "rows_expired": ...}}.
JsonObject SparseTableCountsJson(const proto::JobSpec& spec, const JobResults& r) {
  const int tables = spec.model().sparse_table_size();
  std::vector<proto::SparseTableCounts> sums(tables);
  for (const auto& [rank, counts] : r.sparse_table_counts) {
    for (const proto::SparseTableCounts& c : counts) {
      if (c.table() < 0 || c.table() >= tables) continue;
      proto::SparseTableCounts& sum = sums[c.table()];
      sum.set_refused(sum.refused() + c.refused());
      sum.set_admitted(sum.admitted() + c.admitted());
      sum.set_expired(sum.expired() + c.expired());
    }
  }
  JsonObject json;
  for (int t = 0; t < tables; ++t) {
    JsonObject table;
    table.Add("ids_refused", sums[t].refused())
        .Add("rows_admitted", sums[t].admitted())
        .Add("rows_expired", sums[t].expired());
    json.Add(spec.model().sparse_table(t).name(), table);
  }
  return json;
}

}  // namespace

std::string SummaryJson(const proto::JobSpec& spec, const JobShape& shape, const JobResults& r,
                        const SummaryFacts& facts) {
  const int workers = spec.cluster().workers();
  JsonObject s;
  s.Add("name", spec.name())
      .Add("test_accuracy", r.test_accuracy)
      .Add("test_loss", r.test_loss)
      .AddFloat64("train_loss", r.last_train_loss)
      .Add("steps", facts.steps)
      .Add("epochs", spec.epochs())
      .Add("examples_per_epoch", shape.train_examples)
      .Add("examples_by_epoch", r.examples_by_epoch)
      .Add("samples_per_sec", r.SteadySamplesPerSec())
      .Add("first_epoch_samples_per_sec", r.first_epoch_seconds > 0 ? r.first_epoch_examples / r.first_epoch_seconds : 0.0)
      .Add("all_epochs_samples_per_sec", r.train_seconds > 0 ? r.trained_examples / r.train_seconds : 0.0)
      .Add("train_seconds", r.train_seconds)
      .Add("wall_seconds", facts.wall_seconds)
      .Add("worker_compute_seconds", r.compute_seconds / workers)
      .Add("worker_communication_seconds", (r.push_seconds + r.communication_seconds) / workers)
      .Add("worker_push_seconds", r.push_seconds / workers)
      .Add("worker_wait_seconds", r.communication_seconds / workers)
      .Add("push_bytes_per_step", r.pushing_steps > 0 ? static_cast<double>(r.push_bytes) / r.pushing_steps : 0.0)
      .Add("pull_bytes_per_step", r.pushing_steps > 0 ? static_cast<double>(r.pull_bytes) / r.pushing_steps : 0.0)
      .Add("worker_peak_rss_bytes", static_cast<int64_t>(r.worker_peak_rss_bytes))
      .Add("servers", spec.cluster().servers())
      .Add("workers", workers)
      .Add("consistency", proto::Consistency_Name(spec.consistency()))
      .Add("loss", proto::Loss_Name(shape.task.loss))
      .Add("task", TaskName(TaskOfLoss(shape.task.loss)))
      .Add("num_parameters", static_cast<int64_t>(shape.num_keys))
      .Add("params_sha256", r.params_sha256)
      .Add("resumed_from_step", facts.resumed_from_step)
      .Add("workers_lost", r.workers_lost)
      .Add("workers_joined", r.workers_joined)
      .Add("server_rollbacks", facts.server_rollbacks);
  if (spec.consistency() == proto::SSP) {
    s.Add("staleness", spec.staleness())
        .Add("max_staleness", r.MaxStaleness())
        .Add("steps_by_staleness", r.steps_by_staleness);
  }
  if (shape.validation_examples > 0) AddBestEpoch(shape, r, facts, &s);
  if (spec.model().sparse_table_size() > 0) s.Add("sparse_tables", SparseTableCountsJson(spec, r));
  if (spec.data().table().skip_bad_records() && shape.layout.table.has_value()) {
    JsonObject bad;
    bad.Add("train", shape.layout.table->train_bad_records());
    if (spec.data().validation_files_size() > 0) bad.Add("validation", shape.layout.table->validation_bad_records());
    bad.Add("test", shape.layout.table->test_bad_records());
    s.Add("bad_records_skipped", bad);
  }
  if (spec.data().libsvm().skip_bad_records() && shape.layout.libsvm.has_value()) {
    JsonObject bad;
    bad.Add("train", shape.layout.libsvm->train_bad_records());
    if (spec.data().validation_files_size() > 0) bad.Add("validation", shape.layout.libsvm->validation_bad_records());
    bad.Add("test", shape.layout.libsvm->test_bad_records());
    s.Add("bad_records_skipped", bad);
  }
  EvalFigures last;  // the test evaluation's task metrics
  last.classification = r.classification;
  last.binary = r.binary;
  last.regression = r.regression;
  AddTaskMetricsJson(last, shape.class_names, &s);
  return s.ToPrettyString();
}

}  // namespace tessera
