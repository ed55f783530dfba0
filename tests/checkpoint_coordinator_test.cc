// The checkpoint coordinator (scheduler/checkpoint_coordinator.h) in one
// process: events in (an epoch ended, snapshots, parts written, time, a
// stop), actions out (requests to the servers, the phase to go on with,
// metrics lines), and the manifest it commits, with a clock the test moves.
#include "scheduler/checkpoint_coordinator.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <glog/logging.h>

#include "core/checkpoint_manifest.h"
#include "core/file_util.h"
#include "tests/faulty_file_system.h"
#include "tests/test_util.h"
#include "tools/progress_view.h"

namespace tessera {
namespace {

using std::chrono::seconds;
using Actions = CheckpointCoordinator::Actions;
using Position = CheckpointCoordinator::Position;

class CheckpointCoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    run_ = MakeTempDir("coordinator");
    spec_.set_epochs(3);
    spec_.mutable_cluster()->set_servers(2);
    spec_.mutable_cluster()->set_workers(2);
    proto::TensorMeta t;
    t.set_name("w");
    t.add_shape(10);
    t.set_size(10);
    shape_.tensors = {t};
    shape_.num_keys = 10;
    shape_.server_ranges = {{{0, 5}}, {{5, 10}}};
    shape_.train_examples = 100;
  }

  std::unique_ptr<CheckpointCoordinator> Coordinator() {
    auto c = std::make_unique<CheckpointCoordinator>(spec_, run_, &shape_, &losses_);
    c->Start(0, clock_.Now());
    return c;
  }

  // At the end of training epoch `epoch` (0-based) of 10 steps each.
  static Position EpochEnd(int epoch) {
    Position at;
    at.epoch = epoch;
    at.epoch_first_step = epoch * 10;
    at.epoch_end_step = at.global_step = at.latest_step = (epoch + 1) * 10;
    at.digest = std::string(64, 'd');
    return at;
  }

  static proto::CheckpointDone Ack(int64_t step, const std::string& error = "", int64_t current_version = 0) {
    proto::CheckpointDone ack;
    ack.set_step(step);
    ack.set_error(error);
    ack.set_current_version(current_version);
    return ack;
  }

  static proto::CheckpointDone Part(int64_t step, int server) {
    proto::CheckpointDone done = Ack(step);
    done.set_dir("server-" + std::to_string(server));
    done.set_bytes(1000);
    done.set_state_per_param(1);
    return done;
  }

  // Every server's snapshot, then its part; the actions of the last event of each.
  void TakeAndWrite(CheckpointCoordinator* c, int64_t step, const Position& at, Actions* snapshots, Actions* parts) {
    for (int s = 0; s < 2; ++s) {
      auto a = c->Snapshot(s, Ack(step), at, clock_.Now());
      ASSERT_OK(a.status());
      if (s == 1) *snapshots = *a;
    }
    for (int s = 0; s < 2; ++s) {
      auto a = c->PartWritten(s, Part(step, s), at, clock_.Now());
      ASSERT_OK(a.status());
      if (s == 1) *parts = *a;
    }
  }

  std::string run_;
  proto::JobSpec spec_;
  JobShape shape_;
  EpochLossLedger losses_;  // the workers' loss sums, by step (the tests that need them report some)
  ManualClock clock_;
};

TEST_F(CheckpointCoordinatorTest, AnEpochEndCutGoesOnOnceSnapshotsAreTakenAndCommitsOnceWritten) {
  auto c = Coordinator();
  EXPECT_TRUE(c->Due(1));
  const NextPhase next = NextPhase::Training(1);
  auto started = c->EpochEnded(1, EpochEnd(0), next, clock_.Now());
  ASSERT_OK(started.status());
  ASSERT_TRUE(started->request.has_value());
  EXPECT_EQ(started->request->step(), 10);
  EXPECT_EQ(started->request->dir(), run_ + "/checkpoints/" + CheckpointName(10));
  EXPECT_TRUE(FileExists(started->request->dir())) << "the servers write into it";
  EXPECT_FALSE(started->go_on.has_value()) << "the job waits for the snapshots";
  EXPECT_TRUE(c->busy());

  Actions snapshots, parts;
  TakeAndWrite(c.get(), 10, EpochEnd(0), &snapshots, &parts);
  ASSERT_TRUE(snapshots.go_on.has_value());
  EXPECT_EQ(snapshots.go_on->kind, NextPhase::Kind::kTraining);
  EXPECT_EQ(snapshots.go_on->epoch, 1);
  EXPECT_FALSE(snapshots.release_workers);
  ASSERT_EQ(parts.lines.size(), 1u);
  EXPECT_EQ(JsonString(parts.lines[0].ToString(), "event"), "checkpoint");
  EXPECT_EQ(JsonNumber(parts.lines[0].ToString(), "bytes"), 2000);
  EXPECT_FALSE(c->busy());
  auto manifest = ReadManifest(run_ + "/checkpoints/" + CheckpointName(10));
  ASSERT_OK(manifest.status());
  EXPECT_EQ(manifest->step(), 10);
  EXPECT_EQ(manifest->cursor().epoch(), 1);
  EXPECT_EQ(manifest->cursor().steps_into_epoch(), 0);
  EXPECT_EQ(manifest->params_sha256(), std::string(64, 'd'));
  ASSERT_EQ(manifest->servers_size(), 2);
  EXPECT_EQ(manifest->servers(1).ranges(0).begin(), 5);
  EXPECT_EQ(FileText(run_ + "/checkpoints/latest"), CheckpointName(10) + "\n");
  EXPECT_TRUE(c->error().empty());
}

TEST_F(CheckpointCoordinatorTest, AnEpochEndCutDueWhileOneIsWrittenWaitsAndSoDoesTheJob) {
  auto c = Coordinator();
  ASSERT_OK(c->EpochEnded(1, EpochEnd(0), NextPhase::Training(1), clock_.Now()).status());
  for (int s = 0; s < 2; ++s) ASSERT_OK(c->Snapshot(s, Ack(10), EpochEnd(0), clock_.Now()).status());
  // Epoch 2 ends while epoch 1's parts are still being written.
  auto waiting = c->EpochEnded(2, EpochEnd(1), NextPhase::Training(2), clock_.Now());
  ASSERT_OK(waiting.status());
  EXPECT_FALSE(waiting->request.has_value());
  EXPECT_FALSE(waiting->go_on.has_value()) << "the job waits at the epoch's end";
  ASSERT_OK(c->PartWritten(0, Part(10, 0), EpochEnd(1), clock_.Now()).status());
  auto committed = c->PartWritten(1, Part(10, 1), EpochEnd(1), clock_.Now());
  ASSERT_OK(committed.status());
  ASSERT_TRUE(committed->request.has_value()) << "the deferred cut follows the commit";
  EXPECT_EQ(committed->request->step(), 20);
  EXPECT_FALSE(committed->go_on.has_value());
  Actions snapshots, parts;
  TakeAndWrite(c.get(), 20, EpochEnd(1), &snapshots, &parts);
  ASSERT_TRUE(snapshots.go_on.has_value());
  EXPECT_EQ(snapshots.go_on->epoch, 2);
  EXPECT_EQ(FileText(run_ + "/checkpoints/latest"), CheckpointName(20) + "\n");
}

TEST_F(CheckpointCoordinatorTest, ACutAServerHasPassedMovesAheadWithinItsEpoch) {
  spec_.mutable_checkpoint()->set_every_steps(4);
  auto c = Coordinator();
  Position at = EpochEnd(0);  // epoch 0: steps 0..10
  at.global_step = at.latest_step = 1;
  auto cut = c->Progressed(at, /*can_cut=*/true, clock_.Now());
  ASSERT_OK(cut.status());
  ASSERT_TRUE(cut->request.has_value());
  EXPECT_EQ(cut->request->step(), 5);  // the latest step plus the lead (4 steps at least)
  ASSERT_OK(c->Snapshot(0, Ack(5), at, clock_.Now()).status());
  auto moved = c->Snapshot(1, Ack(5, "a slice is already at step 6, past 5", 6), at, clock_.Now());
  ASSERT_OK(moved.status());
  ASSERT_TRUE(moved->request.has_value());
  EXPECT_EQ(moved->request->step(), 10) << "6 + 4 * 2, at most the epoch's end";
  Actions snapshots, parts;
  TakeAndWrite(c.get(), 10, at, &snapshots, &parts);
  auto manifest = ReadManifest(run_ + "/checkpoints/" + CheckpointName(10));
  ASSERT_OK(manifest.status());
  EXPECT_EQ(manifest->cursor().epoch(), 1) << "moved to the epoch's end: the cursor is the next epoch";
  EXPECT_FALSE(FileExists(run_ + "/checkpoints/" + CheckpointName(5)));
}

TEST_F(CheckpointCoordinatorTest, ARefusedOrOverdueFinalCheckpointFailsTheJobAndTheJobGoesOn) {
  auto c = Coordinator();
  ASSERT_OK(c->EpochEnded(3, EpochEnd(2), NextPhase::Evaluation(2), clock_.Now()).status());
  ASSERT_OK(c->Snapshot(0, Ack(30), EpochEnd(2), clock_.Now()).status());
  clock_.Advance(seconds(29));
  auto early = c->Tick(EpochEnd(2), clock_.Now());
  ASSERT_OK(early.status());
  EXPECT_TRUE(c->busy());
  clock_.Advance(seconds(2));  // 31 s without server 1's snapshot
  auto overdue = c->Tick(EpochEnd(2), clock_.Now());
  ASSERT_OK(overdue.status());
  EXPECT_FALSE(c->busy());
  ASSERT_TRUE(overdue->go_on.has_value()) << "the final evaluation still runs";
  EXPECT_EQ(overdue->go_on->kind, NextPhase::Kind::kEvaluation);
  EXPECT_EQ(c->error(), "the final checkpoint timed out");
  EXPECT_FALSE(FileExists(run_ + "/checkpoints/latest"));

  auto refused = Coordinator();
  ASSERT_OK(refused->EpochEnded(3, EpochEnd(2), NextPhase::Evaluation(2), clock_.Now()).status());
  ASSERT_OK(refused->Snapshot(0, Ack(30, "disk full"), EpochEnd(2), clock_.Now()).status());
  ASSERT_OK(refused->Snapshot(1, Ack(30), EpochEnd(2), clock_.Now()).status());
  ASSERT_OK(refused->PartWritten(1, Part(30, 1), EpochEnd(2), clock_.Now()).status());
  EXPECT_EQ(refused->error(), "the final checkpoint failed: server 0: disk full");
  EXPECT_FALSE(FileExists(run_ + "/checkpoints/" + CheckpointName(30) + "/MANIFEST"));
}

TEST_F(CheckpointCoordinatorTest, AStopCutsAheadOfTheWorkersAndLetsThemGoOnceTaken) {
  auto c = Coordinator();
  Position at = EpochEnd(1);  // epoch 1: steps 10..20
  at.global_step = at.latest_step = 12;
  auto stop = c->Stop(at, /*can_cut=*/true, clock_.Now());
  ASSERT_OK(stop.status());
  ASSERT_TRUE(stop->request.has_value());
  EXPECT_EQ(stop->request->step(), 16);
  Actions snapshots, parts;
  TakeAndWrite(c.get(), 16, at, &snapshots, &parts);
  EXPECT_TRUE(snapshots.release_workers);
  EXPECT_FALSE(snapshots.go_on.has_value());
  EXPECT_EQ(c->stop_note(), "checkpoint " + run_ + "/checkpoints/" + CheckpointName(16) + " committed");
  auto manifest = ReadManifest(run_ + "/checkpoints/" + CheckpointName(16));
  ASSERT_OK(manifest.status());
  EXPECT_EQ(manifest->cursor().epoch(), 1);
  EXPECT_EQ(manifest->cursor().steps_into_epoch(), 6);
  EXPECT_EQ(manifest->params_sha256(), "") << "a digest is known at epoch ends only";
}

// A full disk when the manifest is written (MANIFEST.txt, the copy for
// people, is in; MANIFEST, the commit, is not): that checkpoint does not
// exist (its directory goes, a checkpoint_failed line says why), `latest`
// keeps naming the one before, and when it was the final one the job fails
// with the cause.
TEST_F(CheckpointCoordinatorTest, AManifestThatCannotBeWrittenLeavesTheCheckpointBefore) {
  FaultyFileSystem fs;
  CheckpointCoordinator c(spec_, run_, &shape_, &losses_, &fs);
  c.Start(0, clock_.Now());
  Actions snapshots, parts;
  ASSERT_OK(c.EpochEnded(1, EpochEnd(0), NextPhase::Training(1), clock_.Now()).status());
  TakeAndWrite(&c, 10, EpochEnd(0), &snapshots, &parts);
  ASSERT_EQ(FileText(run_ + "/checkpoints/latest"), CheckpointName(10) + "\n");

  fs.FailNext(FaultyFileSystem::Fault::kDiskFull, CheckpointName(20) + "/MANIFEST.tmp");
  ASSERT_OK(c.EpochEnded(2, EpochEnd(1), NextPhase::Training(2), clock_.Now()).status());
  TakeAndWrite(&c, 20, EpochEnd(1), &snapshots, &parts);
  EXPECT_EQ(fs.struck(), 1);
  ASSERT_EQ(parts.lines.size(), 1u);
  EXPECT_EQ(JsonString(parts.lines[0].ToString(), "event"), "checkpoint_failed");
  EXPECT_EQ(JsonNumber(parts.lines[0].ToString(), "step"), 20);
  EXPECT_FALSE(FileExists(run_ + "/checkpoints/" + CheckpointName(20))) << "the failed cut's files go";
  EXPECT_FALSE(FileExists(run_ + "/checkpoints/" + CheckpointName(20) + "/MANIFEST"));
  EXPECT_EQ(FileText(run_ + "/checkpoints/latest"), CheckpointName(10) + "\n");
  EXPECT_TRUE(c.error().empty()) << "not the final one: the job goes on";

  fs.FailNext(FaultyFileSystem::Fault::kSyncError, CheckpointName(30) + "/MANIFEST.tmp");
  ASSERT_OK(c.EpochEnded(3, EpochEnd(2), NextPhase::Evaluation(2), clock_.Now()).status());
  TakeAndWrite(&c, 30, EpochEnd(2), &snapshots, &parts);
  EXPECT_EQ(c.error().rfind("the final checkpoint failed: cannot flush " + run_ + "/checkpoints/" + CheckpointName(30) +
                                "/MANIFEST.tmp.",
                            0),
            0u)
      << c.error();
}

TEST_F(CheckpointCoordinatorTest, ACutInsideAnEpochThatLostAWorkerIsGivenUp) {
  spec_.mutable_checkpoint()->set_every_steps(4);
  auto c = Coordinator();
  Position at = EpochEnd(0);
  at.global_step = at.latest_step = 1;
  ASSERT_OK(c->Progressed(at, /*can_cut=*/true, clock_.Now()).status());
  ASSERT_OK(c->WorkerLostInEpoch(1, at, clock_.Now()).status());
  Actions snapshots, parts;
  TakeAndWrite(c.get(), 5, at, &snapshots, &parts);
  ASSERT_EQ(parts.lines.size(), 1u);
  EXPECT_EQ(JsonString(parts.lines[0].ToString(), "event"), "checkpoint_failed");
  EXPECT_FALSE(FileExists(run_ + "/checkpoints/" + CheckpointName(5)));
  EXPECT_TRUE(c->error().empty()) << "not the final one";
  // And no new cut inside that epoch.
  auto none = c->Progressed(at, /*can_cut=*/false, clock_.Now());
  ASSERT_OK(none.status());
  EXPECT_FALSE(none->request.has_value());
}

// A cut inside an epoch that servers keep passing: each refusal moves it
// ahead (from the step the refusing server is at); after five moves the
// sixth refusal gives the cut up. It is not the final one: the job goes on,
// with no checkpoint and `latest` untouched.
TEST_F(CheckpointCoordinatorTest, ACutMovedFiveTimesIsGivenUpAtTheSixthRefusal) {
  spec_.mutable_checkpoint()->set_every_steps(4);
  auto c = Coordinator();
  Position at = EpochEnd(0);
  at.epoch_end_step = 100000;  // a long epoch: no move reaches its end
  at.global_step = at.latest_step = 1;
  auto cut = c->Progressed(at, /*can_cut=*/true, clock_.Now());
  ASSERT_OK(cut.status());
  ASSERT_TRUE(cut->request.has_value());
  int64_t step = cut->request->step();
  std::vector<int64_t> moves;
  for (int refusal = 1; refusal <= 6; ++refusal) {
    ASSERT_OK(c->Snapshot(0, Ack(step), at, clock_.Now()).status());
    auto a = c->Snapshot(1, Ack(step, "a slice is past the cut", step + 1), at, clock_.Now());
    ASSERT_OK(a.status());
    if (refusal == 6) {
      EXPECT_FALSE(a->request.has_value()) << "no seventh try";
      break;
    }
    ASSERT_TRUE(a->request.has_value()) << "refusal " << refusal;
    EXPECT_GT(a->request->step(), step + 1);
    step = a->request->step();
    moves.push_back(step);
  }
  EXPECT_EQ(moves.size(), 5u);
  // Server 0's part of the given-up cut comes; nothing commits.
  auto parts = c->PartWritten(0, Part(step, 0), at, clock_.Now());
  ASSERT_OK(parts.status());
  ASSERT_EQ(parts->lines.size(), 1u);
  EXPECT_EQ(JsonString(parts->lines[0].ToString(), "event"), "checkpoint_failed");
  EXPECT_FALSE(c->busy());
  EXPECT_TRUE(c->error().empty());
  EXPECT_FALSE(FileExists(run_ + "/checkpoints/latest"));
  for (int64_t moved : moves) EXPECT_FALSE(FileExists(run_ + "/checkpoints/" + CheckpointName(moved) + "/MANIFEST"));
}

// The last epoch ends while the checkpoint of the one before is still being
// written: the final evaluation goes on at once (the servers stay at this
// step through it), and the final cut is taken once the other commits.
TEST_F(CheckpointCoordinatorTest, AFinalCutDueWhileOneIsWrittenIsTakenOnceThatCommits) {
  auto c = Coordinator();
  ASSERT_OK(c->EpochEnded(2, EpochEnd(1), NextPhase::Training(2), clock_.Now()).status());
  for (int s = 0; s < 2; ++s) ASSERT_OK(c->Snapshot(s, Ack(20), EpochEnd(1), clock_.Now()).status());
  auto final_cut = c->EpochEnded(3, EpochEnd(2), NextPhase::Evaluation(2), clock_.Now());
  ASSERT_OK(final_cut.status());
  EXPECT_FALSE(final_cut->request.has_value());
  ASSERT_TRUE(final_cut->go_on.has_value()) << "the final evaluation does not wait";
  EXPECT_EQ(final_cut->go_on->kind, NextPhase::Kind::kEvaluation);
  ASSERT_OK(c->PartWritten(0, Part(20, 0), EpochEnd(2), clock_.Now()).status());
  auto committed = c->PartWritten(1, Part(20, 1), EpochEnd(2), clock_.Now());
  ASSERT_OK(committed.status());
  ASSERT_TRUE(committed->request.has_value()) << "the deferred final cut follows the commit";
  EXPECT_EQ(committed->request->step(), 30);
  EXPECT_EQ(FileText(run_ + "/checkpoints/latest"), CheckpointName(20) + "\n");
  Actions snapshots, parts;
  TakeAndWrite(c.get(), 30, EpochEnd(2), &snapshots, &parts);
  EXPECT_FALSE(snapshots.go_on.has_value()) << "the evaluation already went on";
  EXPECT_FALSE(c->busy());
  EXPECT_TRUE(c->error().empty());
  auto manifest = ReadManifest(run_ + "/checkpoints/" + CheckpointName(30));
  ASSERT_OK(manifest.status());
  EXPECT_EQ(manifest->cursor().epoch(), 3);
  EXPECT_EQ(FileText(run_ + "/checkpoints/latest"), CheckpointName(30) + "\n");
}

// A server never takes its snapshot of an epoch-end cut: after 30 s the cut
// is abandoned and the job goes on with the phase it held; the next cut is
// taken as usual.
TEST_F(CheckpointCoordinatorTest, ASnapshotThatTimesOutAbandonsTheCutAndTheJobGoesOn) {
  auto c = Coordinator();
  ASSERT_OK(c->EpochEnded(1, EpochEnd(0), NextPhase::Training(1), clock_.Now()).status());
  ASSERT_OK(c->Snapshot(0, Ack(10), EpochEnd(0), clock_.Now()).status());
  clock_.Advance(seconds(31));
  auto overdue = c->Tick(EpochEnd(0), clock_.Now());
  ASSERT_OK(overdue.status());
  ASSERT_TRUE(overdue->go_on.has_value());
  EXPECT_EQ(overdue->go_on->epoch, 1);
  ASSERT_EQ(overdue->lines.size(), 1u);
  EXPECT_EQ(JsonString(overdue->lines[0].ToString(), "reason"), "snapshots overdue");
  EXPECT_FALSE(c->busy());
  EXPECT_TRUE(c->error().empty()) << "not the final one";
  EXPECT_FALSE(FileExists(run_ + "/checkpoints/" + CheckpointName(10) + "/MANIFEST"));
  // A late snapshot of the abandoned cut changes nothing.
  auto late = c->Snapshot(1, Ack(10), EpochEnd(0), clock_.Now());
  ASSERT_OK(late.status());
  EXPECT_FALSE(late->go_on.has_value());

  ASSERT_OK(c->EpochEnded(2, EpochEnd(1), NextPhase::Training(2), clock_.Now()).status());
  Actions snapshots, parts;
  TakeAndWrite(c.get(), 20, EpochEnd(1), &snapshots, &parts);
  EXPECT_EQ(FileText(run_ + "/checkpoints/latest"), CheckpointName(20) + "\n");
}

// every_seconds: a cut inside the epoch once that many seconds have passed
// since the last one (on the clock the test moves), a little ahead of the
// workers; none when it would land at or past the epoch's end.
TEST_F(CheckpointCoordinatorTest, AnEverySecondsCutComesOnceItsSecondsHavePassed) {
  spec_.mutable_checkpoint()->set_every_seconds(10);
  auto c = Coordinator();
  Position at = EpochEnd(0);
  at.epoch_end_step = 1000;
  at.global_step = at.latest_step = 3;
  clock_.Advance(seconds(9));
  auto early = c->Progressed(at, /*can_cut=*/true, clock_.Now());
  ASSERT_OK(early.status());
  EXPECT_FALSE(early->request.has_value());
  clock_.Advance(seconds(1));
  auto due = c->Progressed(at, /*can_cut=*/true, clock_.Now());
  ASSERT_OK(due.status());
  ASSERT_TRUE(due->request.has_value());
  EXPECT_EQ(due->request->step(), 7);  // the latest step plus the lead (4 steps at least)
  Actions snapshots, parts;
  TakeAndWrite(c.get(), 7, at, &snapshots, &parts);
  auto manifest = ReadManifest(run_ + "/checkpoints/" + CheckpointName(7));
  ASSERT_OK(manifest.status());
  EXPECT_EQ(manifest->cursor().epoch(), 0);
  EXPECT_EQ(manifest->cursor().steps_into_epoch(), 7);

  // Counted from that cut: 10 s later the next one, unless the epoch's end is too close.
  at.global_step = at.latest_step = 20;
  clock_.Advance(seconds(9));
  auto not_yet = c->Progressed(at, /*can_cut=*/true, clock_.Now());
  ASSERT_OK(not_yet.status());
  EXPECT_FALSE(not_yet->request.has_value());
  at.epoch_end_step = 22;
  clock_.Advance(seconds(1));
  auto too_close = c->Progressed(at, /*can_cut=*/true, clock_.Now());
  ASSERT_OK(too_close.status());
  EXPECT_FALSE(too_close->request.has_value()) << "20 + 4 is past the epoch's end at 22";
}

// The final checkpoint fails on a full disk: the job's error says so and has
// the kind no restart can fix, so the launcher ends the job instead of
// restarting it into the same full disk.
TEST_F(CheckpointCoordinatorTest, AFinalCheckpointOnAFullDiskFailsTheJobAsPermanent) {
  auto c = Coordinator();
  ASSERT_OK(c->EpochEnded(3, EpochEnd(2), NextPhase::Evaluation(2), clock_.Now()).status());
  for (int s = 0; s < 2; ++s) ASSERT_OK(c->Snapshot(s, Ack(30), EpochEnd(2), clock_.Now()).status());
  ASSERT_OK(c->PartWritten(0, Part(30, 0), EpochEnd(2), clock_.Now()).status());
  proto::CheckpointDone full = Ack(30, "IO error: No space left on device");
  full.set_error_code(static_cast<int>(StatusCode::kResourceExhausted));
  ASSERT_OK(c->PartWritten(1, full, EpochEnd(2), clock_.Now()).status());
  EXPECT_EQ(c->error(), "the final checkpoint failed: server 1: IO error: No space left on device");
  EXPECT_EQ(c->error_code(), StatusCode::kResourceExhausted);
  EXPECT_FALSE(FileExists(run_ + "/checkpoints/" + CheckpointName(30)));
}

// every_steps: a cut due at a step the workers are past lands a little ahead
// of them; one that would land at or past the epoch's end is skipped, and a
// checkpoint_skipped line says so (issue 19 #6: skips were silent).
TEST_F(CheckpointCoordinatorTest, AnEveryStepsCutThatCannotBeTakenSaysWhy) {
  spec_.mutable_checkpoint()->set_every_steps(10);
  auto c = Coordinator();
  Position at = EpochEnd(0);
  at.epoch_end_step = 21;
  at.global_step = 0;
  at.latest_step = 8;  // + a lead of 4: past the step 10 the cut is due at
  auto late = c->Progressed(at, /*can_cut=*/true, clock_.Now());
  ASSERT_OK(late.status());
  ASSERT_TRUE(late->request.has_value());
  EXPECT_EQ(late->request->step(), 12);
  Actions snapshots, parts;
  TakeAndWrite(c.get(), 12, at, &snapshots, &parts);

  at.latest_step = 18;  // the cut due at 20 would land at 22, past the epoch's end at 21
  auto skipped = c->Progressed(at, /*can_cut=*/true, clock_.Now());
  ASSERT_OK(skipped.status());
  EXPECT_FALSE(skipped->request.has_value());
  ASSERT_EQ(skipped->lines.size(), 1u);
  const std::string line = skipped->lines[0].ToString();
  EXPECT_EQ(JsonString(line, "event"), "checkpoint_skipped");
  EXPECT_EQ(JsonNumber(line, "step"), 20);
  EXPECT_EQ(JsonString(line, "reason"), "the epoch ends at step 21 first");
}

// Worker `rank`'s PROGRESS for steps [first, end) of epoch `epoch`: step s
// has the loss sum (rank + 1) / (s + 3) over 5 examples.
proto::Progress StepsDone(int epoch, int rank, int64_t first, int64_t end) {
  proto::Progress p;
  p.set_epoch(epoch);
  p.set_step(end);
  for (int64_t s = first; s < end; ++s) {
    p.add_step_loss_sums((rank + 1.0) / (s + 3.0));
    p.add_step_examples(5);
  }
  return p;
}

// What worker `rank` has summed over steps [first, end), as it adds them up.
double WorkerSum(int rank, int64_t first, int64_t end) {
  double sum = 0;
  for (int64_t s = first; s < end; ++s) sum += (rank + 1.0) / (s + 3.0);
  return sum;
}

// A cut inside an epoch keeps every worker's loss sums over the epoch's
// steps before it, so that a resumed epoch's train_loss covers the whole
// epoch: it commits only once every worker has reported past it, even with
// every part written.
TEST_F(CheckpointCoordinatorTest, ACutInsideAnEpochCommitsWithEveryWorkersLossSumsUpToIt) {
  spec_.mutable_checkpoint()->set_every_steps(4);
  auto c = Coordinator();
  Position at = EpochEnd(1);  // epoch 1: steps 10..20
  at.global_step = 10;
  at.latest_step = 12;
  losses_.Begin(1, 10, {LossSums{}, LossSums{}});
  losses_.Report(0, StepsDone(1, 0, 10, 12));
  auto cut = c->Progressed(at, /*can_cut=*/true, clock_.Now());
  ASSERT_OK(cut.status());
  ASSERT_TRUE(cut->request.has_value());
  ASSERT_EQ(cut->request->step(), 16);
  const std::string dir = run_ + "/checkpoints/" + CheckpointName(16);
  losses_.Report(0, StepsDone(1, 0, 12, 18));  // past the cut
  losses_.Report(1, StepsDone(1, 1, 10, 15));  // not yet
  ASSERT_OK(c->WorkersReported(at, clock_.Now()).status());
  Actions snapshots, parts;
  TakeAndWrite(c.get(), 16, at, &snapshots, &parts);
  EXPECT_TRUE(parts.lines.empty());
  EXPECT_TRUE(c->busy()) << "waiting for worker 1's steps 15 and 16";
  EXPECT_FALSE(FileExists(dir + "/MANIFEST"));

  losses_.Report(1, StepsDone(1, 1, 15, 17));
  auto reported = c->WorkersReported(at, clock_.Now());
  ASSERT_OK(reported.status());
  ASSERT_EQ(reported->lines.size(), 1u);
  EXPECT_EQ(JsonString(reported->lines[0].ToString(), "event"), "checkpoint");
  EXPECT_FALSE(c->busy());
  auto manifest = ReadManifest(dir);
  ASSERT_OK(manifest.status());
  EXPECT_EQ(manifest->cursor().steps_into_epoch(), 6);
  ASSERT_EQ(manifest->partial_epoch_loss().by_rank_size(), 2);
  for (int rank = 0; rank < 2; ++rank) {
    const proto::RankLoss& kept = manifest->partial_epoch_loss().by_rank(rank);
    EXPECT_EQ(kept.loss_sum(), WorkerSum(rank, 10, 16)) << "steps 10..15 of worker " << rank << ", bit for bit";
    EXPECT_EQ(kept.examples(), 30);
  }
}

// A stop's cut inside an epoch lets the workers go only once their loss
// sums up to it are in: a released worker reports nothing more.
TEST_F(CheckpointCoordinatorTest, AStopsCutInsideAnEpochLetsTheWorkersGoOnceTheirLossSumsAreIn) {
  auto c = Coordinator();
  Position at = EpochEnd(1);
  at.global_step = at.latest_step = 12;
  losses_.Begin(1, 10, {LossSums{}, LossSums{}});
  ASSERT_OK(c->Stop(at, /*can_cut=*/true, clock_.Now()).status());
  Actions snapshots, parts;
  TakeAndWrite(c.get(), 16, at, &snapshots, &parts);
  EXPECT_FALSE(snapshots.release_workers);
  EXPECT_FALSE(parts.release_workers);
  EXPECT_TRUE(c->busy());
  losses_.Report(0, StepsDone(1, 0, 10, 17));
  losses_.Report(1, StepsDone(1, 1, 10, 16));
  auto reported = c->WorkersReported(at, clock_.Now());
  ASSERT_OK(reported.status());
  EXPECT_TRUE(reported->release_workers);
  EXPECT_FALSE(c->busy());
  auto manifest = ReadManifest(run_ + "/checkpoints/" + CheckpointName(16));
  ASSERT_OK(manifest.status());
  ASSERT_EQ(manifest->partial_epoch_loss().by_rank_size(), 2);
  EXPECT_EQ(manifest->partial_epoch_loss().by_rank(1).loss_sum(), WorkerSum(1, 10, 16));
  EXPECT_EQ(c->stop_note(), "checkpoint " + run_ + "/checkpoints/" + CheckpointName(16) + " committed");
}

// The sums are taken as soon as every worker is past the cut: the epoch may
// end (and the ledger go on to the next) before the last server's part is in.
TEST_F(CheckpointCoordinatorTest, TheLossSumsAreKeptWhenTheyComeThoughTheEpochEndsBeforeTheCommit) {
  spec_.mutable_checkpoint()->set_every_steps(4);
  auto c = Coordinator();
  Position at = EpochEnd(0);
  at.global_step = at.latest_step = 1;
  losses_.Begin(0, 0, {LossSums{}, LossSums{}});
  auto cut = c->Progressed(at, /*can_cut=*/true, clock_.Now());
  ASSERT_OK(cut.status());
  ASSERT_EQ(cut->request->step(), 5);
  for (int rank = 0; rank < 2; ++rank) losses_.Report(rank, StepsDone(0, rank, 0, 10));
  ASSERT_OK(c->WorkersReported(at, clock_.Now()).status());
  losses_.Begin(1, 10, {LossSums{}, LossSums{}});  // the next epoch
  Actions snapshots, parts;
  TakeAndWrite(c.get(), 5, EpochEnd(1), &snapshots, &parts);
  auto manifest = ReadManifest(run_ + "/checkpoints/" + CheckpointName(5));
  ASSERT_OK(manifest.status());
  ASSERT_EQ(manifest->partial_epoch_loss().by_rank_size(), 2);
  EXPECT_EQ(manifest->partial_epoch_loss().by_rank(0).loss_sum(), WorkerSum(0, 0, 5));
}

// Sums that can never come (a worker's reports broke off) do not hold the
// cut up: it commits without them, as a manifest written before they were kept.
TEST_F(CheckpointCoordinatorTest, ACutWhoseLossSumsCannotComeCommitsWithoutThem) {
  spec_.mutable_checkpoint()->set_every_steps(4);
  auto c = Coordinator();
  Position at = EpochEnd(0);
  at.global_step = at.latest_step = 1;
  losses_.Begin(0, 0, {LossSums{}, LossSums{}});
  ASSERT_OK(c->Progressed(at, /*can_cut=*/true, clock_.Now()).status());
  losses_.Report(1, StepsDone(0, 1, 3, 6));  // steps 0..2 never came
  Actions snapshots, parts;
  TakeAndWrite(c.get(), 5, at, &snapshots, &parts);
  EXPECT_FALSE(c->busy());
  auto manifest = ReadManifest(run_ + "/checkpoints/" + CheckpointName(5));
  ASSERT_OK(manifest.status());
  EXPECT_FALSE(manifest->has_partial_epoch_loss());
}

// A cut waiting for the loss sums of a worker that is then lost is given
// up at once, not after the write timeout.
TEST_F(CheckpointCoordinatorTest, ACutWaitingForALostWorkersLossSumsFailsAtOnce) {
  spec_.mutable_checkpoint()->set_every_steps(4);
  auto c = Coordinator();
  Position at = EpochEnd(0);
  at.global_step = at.latest_step = 1;
  losses_.Begin(0, 0, {LossSums{}, LossSums{}});
  ASSERT_OK(c->Progressed(at, /*can_cut=*/true, clock_.Now()).status());
  Actions snapshots, parts;
  TakeAndWrite(c.get(), 5, at, &snapshots, &parts);
  ASSERT_TRUE(c->busy()) << "waiting for the workers' steps up to 5";
  auto lost = c->WorkerLostInEpoch(1, at, clock_.Now());
  ASSERT_OK(lost.status());
  ASSERT_EQ(lost->lines.size(), 1u);
  EXPECT_EQ(JsonString(lost->lines[0].ToString(), "event"), "checkpoint_failed");
  EXPECT_FALSE(c->busy());
  EXPECT_FALSE(FileExists(run_ + "/checkpoints/" + CheckpointName(5)));
  EXPECT_FALSE(FileExists(run_ + "/checkpoints/latest"));
}

// Collects the ERROR lines glog writes while it exists.
class ErrorLines : public google::LogSink {
 public:
  ErrorLines() { google::AddLogSink(this); }
  ~ErrorLines() override { google::RemoveLogSink(this); }
  void send(google::LogSeverity severity, const char*, const char*, int, const struct ::tm*, const char* message,
            size_t length) override {
    if (severity == google::GLOG_ERROR) lines.emplace_back(message, length);
  }
  std::vector<std::string> lines;
};

// A server's disk fills while it writes its part: the checkpoint gets no
// manifest, the one before stays the newest intact one (and `latest`), and
// one line names the step and the cause.
TEST_F(CheckpointCoordinatorTest, ADiskThatFillsDuringAPartWriteLeavesTheCheckpointBeforeAndSaysSoInOneLine) {
  auto c = Coordinator();
  Actions snapshots, parts;
  ASSERT_OK(c->EpochEnded(1, EpochEnd(0), NextPhase::Training(1), clock_.Now()).status());
  TakeAndWrite(c.get(), 10, EpochEnd(0), &snapshots, &parts);
  ASSERT_OK(c->EpochEnded(2, EpochEnd(1), NextPhase::Training(2), clock_.Now()).status());
  for (int s = 0; s < 2; ++s) ASSERT_OK(c->Snapshot(s, Ack(20), EpochEnd(1), clock_.Now()).status());
  ErrorLines errors;
  ASSERT_OK(c->PartWritten(0, Part(20, 0), EpochEnd(1), clock_.Now()).status());
  auto failed = c->PartWritten(1, Ack(20, "IO error: No space left on device"), EpochEnd(1), clock_.Now());
  ASSERT_OK(failed.status());
  ASSERT_EQ(failed->lines.size(), 1u);
  EXPECT_EQ(JsonString(failed->lines[0].ToString(), "event"), "checkpoint_failed");
  EXPECT_EQ(JsonString(failed->lines[0].ToString(), "reason"), "server 1: IO error: No space left on device");
  EXPECT_FALSE(FileExists(run_ + "/checkpoints/" + CheckpointName(20)))
      << "server 0's part goes: it would keep the disk full";
  EXPECT_FALSE(c->busy());
  EXPECT_TRUE(c->error().empty()) << "not the final one: the job goes on";
  EXPECT_FALSE(FileExists(run_ + "/checkpoints/" + CheckpointName(20) + "/MANIFEST"));
  EXPECT_EQ(FileText(run_ + "/checkpoints/latest"), CheckpointName(10) + "\n");
  EXPECT_OK(ReadManifest(run_ + "/checkpoints/" + CheckpointName(10)).status());
  ASSERT_EQ(errors.lines.size(), 1u);
  EXPECT_EQ(errors.lines[0], "checkpoint at step 20 failed: server 1: IO error: No space left on device");
}

}  // namespace
}  // namespace tessera
