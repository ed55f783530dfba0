// Helpers shared by the tests.
#ifndef TESSERA_TESTS_TEST_UTIL_H_
#define TESSERA_TESTS_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "proto/job.pb.h"
#include "tools/child_process.h"

#define ASSERT_OK(expr)                                          \
  do {                                                           \
    const ::tessera::Status assert_ok_status_ = (expr);          \
    ASSERT_TRUE(assert_ok_status_.ok()) << assert_ok_status_.ToString(); \
  } while (0)
#define EXPECT_OK(expr)                                          \
  do {                                                           \
    const ::tessera::Status expect_ok_status_ = (expr);          \
    EXPECT_TRUE(expect_ok_status_.ok()) << expect_ok_status_.ToString(); \
  } while (0)

namespace tessera {

// The tessera binary under test and the source tree.
inline std::string TesseraBinary() { return TESSERA_BINARY; }
inline std::string SourceDir() { return TESSERA_SOURCE_DIR; }

// A fresh empty directory under the test temp dir, removed with everything
// in it when the test program ends with every test passed (kept after a
// failure, and always with TESSERA_KEEP_TEST_DIRS=1).
std::string MakeTempDir(const std::string& prefix);

// A fresh directory named after the current test, removed with everything in it on destruction.
class ScopedTestDir {
 public:
  ScopedTestDir();
  ~ScopedTestDir();
  ScopedTestDir(const ScopedTestDir&) = delete;
  ScopedTestDir& operator=(const ScopedTestDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Writes `text` to `path` as it is, or gzip-compressed; a test failure when it cannot.
void WriteText(const std::string& path, const std::string& text);
void WriteGzText(const std::string& path, const std::string& text);

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs `tessera ARGS...` to completion, with a timeout (killed after it).
CommandResult RunTessera(const std::vector<std::string>& args, int timeout_s = 600);

// Each sparse table of each server part of the checkpoint `checkpoint_dir`,
// its chain applied (ReadCheckpointSparseTable): "server-R/sparse-T" -> the
// SHA-256 of its rows (id, last step, values and state) in id order. A test
// failure (and an empty map) when the manifest or a table does not read.
std::map<std::string, std::string> SparseTableDigests(const std::string& checkpoint_dir);

// SparseTableDigests of the newest intact checkpoint of the run directory
// `run` (a checkpoint's files themselves depend on which earlier cuts were
// full, so runs are compared by their rows). A test failure (and an empty
// map) when there is none.
std::map<std::string, std::string> NewestCheckpointTableRows(const std::string& run);

// PIDs of the running children of `pid`.
std::vector<int> ChildrenOf(int pid);

// True while `pid` exists and is not a zombie.
bool IsRunning(int pid);

// The process's command line, arguments separated by spaces ("" when gone).
std::string CommandLine(int pid);

// PIDs of running processes whose command line contains `needle`.
std::vector<int> ProcessesMatching(const std::string& needle);

// Model layers (the inside of `model { }`) for the export and serving tests:
// a small CNN with every layer kind the export knows (conv with and without
// bias, padding and stride; batch norm 2-d and 1-d; pooling; dropout, which
// has no ONNX node; flatten; linear), and an MLP whose Linear reads the image
// directly (the export must flatten first).
extern const char kCnnModel[];
extern const char kMlpModel[];

// The ModelSpec of such layers; an empty one (and a test failure) when they do not parse.
proto::ModelSpec ParseModel(const std::string& layers);

// Model::Infer's logits (evaluation mode, 10 classes) of `batch` examples of
// `input_shape` for a model of `spec` with `params`; {} (and a test failure)
// when the model cannot be built.
std::vector<float> InferLogits(const proto::ModelSpec& spec, const std::vector<int64_t>& input_shape,
                               const std::vector<float>& params, const std::vector<float>& x, int64_t batch);

// Writes a data set of `train` and `test` 4x4 byte images (labels 0-9 in
// turn) into `dir` under the spec's default file names, for jobs whose data
// only has to exist.
void WriteTinyImageData(const std::string& dir, uint32_t train, uint32_t test);

// A file's text; "" when it cannot be read.
std::string FileText(const std::string& path);

// Waiting in tests is for events that must happen (a file, a line the code
// always writes, a step count), never for time to pass: these poll `done`
// until it holds and return true, or return false once `timeout_s` have gone
// by (the deadline only bounds a failure; it is never the expected outcome).
bool WaitUntil(const std::function<bool()>& done, int timeout_s = 120);

// Waits until the file at `path` contains `text`.
bool WaitForText(const std::string& path, const std::string& text, int timeout_s = 120);

// Waits for the port a scheduler writes to its --port-file (a line); "" when none came.
std::string WaitForPortFile(const std::string& path);

// A `tessera serve` child process and the port it listens on.
struct ServeProcess {
  std::unique_ptr<ChildProcess> process;
  int port = 0;  // 0 (and a test failure) when it did not start serving
  std::string log;
};

// Starts `tessera serve --port 0 ARGS...` with its log in a new temp
// directory and waits (up to 60 s) for "serving on 127.0.0.1:PORT".
ServeProcess StartServe(const std::vector<std::string>& args);

}  // namespace tessera

#endif  // TESSERA_TESTS_TEST_UTIL_H_
