// What a job reports about itself, in one process: metrics.jsonl lines and
// the figures of summary.json.
#include "scheduler/job_metrics.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "core/file_util.h"
#include "tests/test_util.h"
#include "tools/progress_view.h"

namespace tessera {
namespace {

TEST(JobMetricsTest, TheFirstEpochIsReportedApartFromTheSteadyRate) {
  JobResults r;
  EXPECT_EQ(r.SteadySamplesPerSec(), 0);
  r.AddEpoch(4.0, 1000);  // warm-up: slow
  EXPECT_DOUBLE_EQ(r.SteadySamplesPerSec(), 250);  // a one-epoch job has only its first
  r.AddEpoch(1.0, 1000);
  r.AddEpoch(1.0, 1000);
  EXPECT_DOUBLE_EQ(r.SteadySamplesPerSec(), 1000);
  EXPECT_EQ(r.epochs_timed, 3);
  EXPECT_DOUBLE_EQ(r.first_epoch_seconds, 4.0);
  EXPECT_EQ(r.trained_examples, 3000);
  EXPECT_DOUBLE_EQ(r.train_seconds, 6.0);
}

TEST(JobMetricsTest, BytesCountOnlyForTraining) {
  proto::PhaseDone report;
  report.set_compute_seconds(1.5);
  report.set_communication_seconds(0.5);
  report.set_push_seconds(0.25);
  report.set_push_bytes(4000);
  report.set_pull_bytes(3000);
  report.set_pushed_steps(10);
  JobResults r;
  r.AddWorkerReport(report, /*training=*/true);
  r.AddWorkerReport(report, /*training=*/false);
  EXPECT_DOUBLE_EQ(r.compute_seconds, 3.0);
  EXPECT_DOUBLE_EQ(r.communication_seconds, 1.0);
  EXPECT_DOUBLE_EQ(r.push_seconds, 0.5);
  EXPECT_EQ(r.push_bytes, 4000u);
  EXPECT_EQ(r.pull_bytes, 3000u);
  EXPECT_EQ(r.pushing_steps, 10);
}

TEST(JobMetricsTest, TheWorkersPeakMemoryIsTheLargestReported) {
  JobResults r;
  proto::PhaseDone report;
  r.AddWorkerReport(report, /*training=*/true);  // a worker that could not say
  EXPECT_EQ(r.worker_peak_rss_bytes, 0u);
  for (const uint64_t peak : {300u, 500u, 400u}) {
    report.set_peak_rss_bytes(peak);
    r.AddWorkerReport(report, /*training=*/peak != 500);  // evaluation's reports count too
  }
  EXPECT_EQ(r.worker_peak_rss_bytes, 500u);
}

TEST(JobMetricsTest, TheSummaryGivesPerWorkerAndPerStepFigures) {
  proto::JobSpec spec;
  spec.set_name("summary");
  spec.set_epochs(2);
  spec.mutable_cluster()->set_servers(3);
  spec.mutable_cluster()->set_workers(2);
  JobShape shape;
  shape.train_examples = 1000;
  shape.num_keys = 77;
  JobResults r;
  r.AddEpoch(2.0, 1000);
  r.AddEpoch(1.0, 1000);
  r.examples_by_epoch = {1000, 1000};
  r.test_accuracy = 0.875;
  r.params_sha256 = std::string(64, 'c');
  r.compute_seconds = 8;
  r.push_bytes = 900;
  r.pushing_steps = 3;
  r.workers_lost = 1;
  r.worker_peak_rss_bytes = uint64_t{3} << 30;
  SummaryFacts facts;
  facts.steps = 40;
  facts.wall_seconds = 5;
  facts.server_rollbacks = 2;
  const std::string json = SummaryJson(spec, shape, r, facts);
  EXPECT_EQ(JsonString(json, "name"), "summary");
  EXPECT_EQ(JsonNumber(json, "test_accuracy"), 0.875);
  EXPECT_EQ(JsonNumber(json, "steps"), 40);
  EXPECT_EQ(JsonNumber(json, "examples_per_epoch"), 1000);
  EXPECT_NE(json.find("\"examples_by_epoch\": [1000, 1000]"), std::string::npos) << json;
  EXPECT_EQ(JsonNumber(json, "samples_per_sec"), 1000);
  EXPECT_EQ(JsonNumber(json, "first_epoch_samples_per_sec"), 500);
  EXPECT_EQ(JsonNumber(json, "worker_compute_seconds"), 4);  // per worker
  EXPECT_EQ(JsonNumber(json, "push_bytes_per_step"), 300);
  EXPECT_EQ(JsonNumber(json, "worker_peak_rss_bytes"), 3221225472.0);
  EXPECT_EQ(JsonNumber(json, "num_parameters"), 77);
  EXPECT_EQ(JsonString(json, "params_sha256"), std::string(64, 'c'));
  EXPECT_EQ(JsonNumber(json, "resumed_from_step"), -1);
  EXPECT_EQ(JsonNumber(json, "workers_lost"), 1);
  EXPECT_EQ(JsonNumber(json, "server_rollbacks"), 2);
  EXPECT_EQ(JsonString(json, "consistency"), "BSP");
}

// Each server's newest CHECKPOINT_DONE counts, summed per table by name.
TEST(JobMetricsTest, TheSummarySumsEachServersNewestSparseTableCounts) {
  proto::JobSpec spec;
  spec.mutable_cluster()->set_workers(1);
  spec.mutable_model()->add_sparse_table()->set_name("ids");
  spec.mutable_model()->add_sparse_table()->set_name("ads");
  auto done = [](int64_t refused, int64_t admitted, int64_t expired) {
    proto::Header h;
    proto::SparseTableCounts* c = h.add_sparse_table_counts();
    c->set_table(1);
    c->set_refused(refused);
    c->set_admitted(admitted);
    c->set_expired(expired);
    return h;
  };
  JobResults r;
  r.AddSparseTableCounts(0, done(1, 2, 3));
  r.AddSparseTableCounts(0, done(10, 20, 30));  // newer: replaces the one before
  r.AddSparseTableCounts(1, done(5, 6, 7));
  r.AddSparseTableCounts(1, proto::Header());    // no counts: kept as they were
  const std::string json = SummaryJson(spec, JobShape(), r, SummaryFacts());
  EXPECT_NE(json.find("\"ids\": {\"ids_refused\": 0, \"rows_admitted\": 0, \"rows_expired\": 0}"), std::string::npos)
      << json;
  EXPECT_NE(json.find("\"ads\": {\"ids_refused\": 15, \"rows_admitted\": 26, \"rows_expired\": 37}"),
            std::string::npos)
      << json;
  // A job without sparse tables says nothing of them.
  proto::JobSpec plain;
  plain.mutable_cluster()->set_workers(1);
  EXPECT_EQ(SummaryJson(plain, JobShape(), r, SummaryFacts()).find("sparse_tables"), std::string::npos);
}

TEST(JobMetricsTest, ProgressLinesComeEveryHalfSecondWithTheRateOfTheWindow) {
  ManualClock clock;
  EpochProgress progress;
  EpochProgress::Context context;
  context.epoch = 1;
  context.epochs = 4;
  context.train_examples = 1000;
  context.trained_seconds = 10;
  context.job_start = clock.Now();
  clock.Advance(std::chrono::seconds(12));
  context.epoch_start = clock.Now();
  progress.EpochStarted(clock.Now());
  progress.PartStarted(100);
  auto report = [](int64_t step, int64_t examples, double loss_sum) {
    proto::Progress p;
    p.set_step(step);
    p.set_examples(examples);
    p.set_loss_sum(loss_sum);
    return p;
  };
  clock.Advance(std::chrono::milliseconds(200));
  EXPECT_FALSE(progress.Report(report(110, 200, 100), context, clock.Now()).has_value()) << "too soon";
  EXPECT_EQ(progress.latest_step(), 110);
  clock.Advance(std::chrono::milliseconds(300));
  const auto line = progress.Report(report(105, 300, 50), context, clock.Now());  // an older step: not the latest
  ASSERT_TRUE(line.has_value());
  const std::string text = line->ToString();
  EXPECT_EQ(JsonString(text, "event"), "progress");
  EXPECT_EQ(JsonNumber(text, "epoch"), 2);
  EXPECT_EQ(JsonNumber(text, "step"), 110);
  EXPECT_DOUBLE_EQ(JsonNumber(text, "loss"), 0.3);              // 150 over 500 examples
  EXPECT_DOUBLE_EQ(JsonNumber(text, "samples_per_sec"), 1000);  // 500 in 0.5 s
  EXPECT_DOUBLE_EQ(JsonNumber(text, "fraction"), 0.375);        // (1 + 500/1000) / 4
  EXPECT_DOUBLE_EQ(JsonNumber(text, "elapsed_seconds"), 12.5);
  // The step rate: over at least a second between the first report and a later one.
  EXPECT_EQ(progress.steps_per_second(), 0);
  clock.Advance(std::chrono::seconds(1));
  progress.Report(report(130, 0, 0), context, clock.Now());
  EXPECT_DOUBLE_EQ(progress.steps_per_second(), 20 / 1.3);
}

TEST(JobMetricsTest, TheLogAppendsOneLinePerEvent) {
  const std::string dir = MakeTempDir("metrics");
  {
    MetricsLog log;
    ASSERT_OK(log.Open(dir));
    JsonObject a, b;
    a.Add("event", "epoch").Add("epoch", 1);
    b.Add("event", "eval").Add("test_accuracy", 0.5);
    log.Record(a);
    EXPECT_EQ(FileText(dir + "/metrics.jsonl"), "{\"event\": \"epoch\", \"epoch\": 1}\n");  // flushed at once
    log.Record(b);
  }
  {
    MetricsLog resumed;  // a resumed run goes on in the same file
    ASSERT_OK(resumed.Open(dir));
    JsonObject c;
    c.Add("event", "rollback");
    resumed.Record(c);
  }
  const std::string text = FileText(dir + "/metrics.jsonl");
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 3) << text;
  EXPECT_NE(text.find("\"event\": \"eval\""), std::string::npos) << text;

  MetricsLog nowhere;
  EXPECT_OK(nowhere.Open(""));
  nowhere.Record(JsonObject());  // no run directory: nothing written, nothing fails
  MetricsLog missing;
  const Status s = missing.Open(dir + "/no/such/dir");
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("metrics.jsonl"), std::string::npos) << s.ToString();
}

// A resumed job's history from metrics.jsonl (issue 19 #5): every earlier
// run's losses, joins and rollbacks, and the last count of each epoch done.
TEST(JobHistoryTest, ReadsWhatEarlierRunsOfTheJobRecorded) {
  const std::string dir = MakeTempDir("history");
  std::ofstream(dir + "/metrics.jsonl") << R"({"event": "epoch", "epoch": 1, "examples": 1000}
{"event": "worker_lost", "rank": 1}
{"event": "worker_joined", "rank": 1}
{"event": "epoch", "epoch": 2, "examples": 990}
{"event": "rollback", "reason": "SERVER 0 (pid 7) exited"}
not json at all
{"event": "epoch", "epoch": 2, "examples": 1000}
{"event": "epoch", "epoch": 3, "examples": 1000}
{"event": "worker_lost", "rank": 0}
)";
  const JobHistory history = ReadJobHistory(dir + "/metrics.jsonl", /*epochs_done=*/2);
  EXPECT_EQ(history.workers_lost, 2);
  EXPECT_EQ(history.workers_joined, 1);
  EXPECT_EQ(history.server_rollbacks, 1);
  EXPECT_EQ(history.examples_by_epoch, (std::vector<int64_t>{1000, 1000})) << "epoch 2's last line; epoch 3 is not done";
  const JobHistory none = ReadJobHistory(dir + "/missing.jsonl", 1);
  EXPECT_EQ(none.workers_lost, 0);
  EXPECT_EQ(none.examples_by_epoch, (std::vector<int64_t>{0}));
}

// The best epoch and early-stopping state: the last validation line among
// the epochs done, its numbers exactly as the scheduler had them.
TEST(JobHistoryTest, RestoresTheBestEpochFromTheLastValidationOfTheEpochsDone) {
  const std::string dir = MakeTempDir("history");
  const double best = 0.30000000000000004;  // every digit matters
  JsonObject epoch2;
  epoch2.Add("event", "eval").Add("set", "validation").Add("epoch", 2).Add("best_epoch", 2).Add("best_step", 20);
  epoch2.AddFloat64("best_value", best).Add("evaluations_without_improvement", 0);
  std::ofstream(dir + "/metrics.jsonl")
      << R"({"event": "eval", "set": "validation", "epoch": 1, "best_epoch": 1, "best_step": 10, "best_value": 0.5, "evaluations_without_improvement": 0}
{"event": "eval", "set": "validation", "epoch": 2, "best_epoch": 1, "best_step": 10, "best_value": 0.5, "evaluations_without_improvement": 1}
{"event": "rollback", "reason": "a server was lost"}
)" << epoch2.ToString() << "\n"
      << R"({"event": "eval", "set": "test", "epoch": 2, "test_accuracy": 0.5}
{"event": "eval", "set": "validation", "epoch": 3, "best_epoch": 2, "best_step": 20, "best_value": 0.25, "evaluations_without_improvement": 0}
)";
  // Epoch 2 was validated twice (again after the rollback): the last line counts; epoch 3 is not done.
  JobHistory history = ReadJobHistory(dir + "/metrics.jsonl", /*epochs_done=*/2);
  EXPECT_EQ(history.validated_epochs, 2);
  ASSERT_TRUE(history.best.has_value());
  EXPECT_EQ(history.best->epoch, 1);
  EXPECT_EQ(history.best->step, 20);
  EXPECT_EQ(history.best->value, best);
  EXPECT_EQ(history.best->evaluations_without_improvement, 0);
  history = ReadJobHistory(dir + "/metrics.jsonl", 1);
  EXPECT_EQ(history.validated_epochs, 1);
  EXPECT_EQ(history.best->value, 0.5);
  history = ReadJobHistory(dir + "/metrics.jsonl", 0);
  EXPECT_EQ(history.validated_epochs, 0);
  EXPECT_FALSE(history.best.has_value());

  // Validations that scored no number yet (NaN): no best, but the count goes on.
  std::ofstream(dir + "/nan.jsonl")
      << R"({"event": "eval", "set": "validation", "epoch": 1, "evaluations_without_improvement": 1})" << "\n";
  history = ReadJobHistory(dir + "/nan.jsonl", 1);
  ASSERT_TRUE(history.best.has_value());
  EXPECT_EQ(history.best->epoch, -1);
  EXPECT_EQ(history.best->evaluations_without_improvement, 1);
}

TEST(JobMetricsTest, WithAValidationSplitTheSummaryNamesTheBestEpochAndItsCheckpoint) {
  proto::JobSpec spec;
  spec.set_epochs(10);
  JobShape shape;
  shape.train_examples = 900;
  shape.validation_examples = 100;
  JobResults r;
  r.best = BestSoFar{2, 30, 0.4125, 2};
  r.best_metric = "validation_loss";
  r.stopped_early_after_epoch = 5;
  SummaryFacts facts;
  facts.best_checkpoint = "/runs/r/checkpoints/step-000000000030";
  std::string json = SummaryJson(spec, shape, r, facts);
  EXPECT_EQ(JsonNumber(json, "validation_examples"), 100);
  EXPECT_EQ(JsonNumber(json, "best_epoch"), 3);
  EXPECT_EQ(JsonNumber(json, "best_step"), 30);
  EXPECT_NE(json.find("\"best_metric\": {\"name\": \"validation_loss\", \"value\": 0.4125}"), std::string::npos)
      << json;
  EXPECT_EQ(JsonString(json, "best_checkpoint"), facts.best_checkpoint);
  EXPECT_NE(json.find("\"stopped_early\": true"), std::string::npos) << json;
  EXPECT_EQ(JsonNumber(json, "stopped_at_epoch"), 5);

  // No checkpoint of the best epoch, no early stop: nulls and false.
  r.stopped_early_after_epoch = 0;
  json = SummaryJson(spec, shape, r, SummaryFacts());
  EXPECT_NE(json.find("\"best_checkpoint\": null"), std::string::npos) << json;
  EXPECT_NE(json.find("\"stopped_early\": false"), std::string::npos) << json;
  EXPECT_NE(json.find("\"stopped_at_epoch\": null"), std::string::npos) << json;
  // Without a split none of it is there.
  shape.validation_examples = 0;
  json = SummaryJson(spec, shape, JobResults(), SummaryFacts());
  EXPECT_EQ(json.find("best_epoch"), std::string::npos) << json;
  EXPECT_EQ(json.find("stopped_early"), std::string::npos) << json;
}

}  // namespace
}  // namespace tessera
