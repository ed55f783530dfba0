#include "tests/test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>
#include <mutex>
#include <sstream>
#include <thread>

#include "core/checkpoint_manifest.h"
#include "core/dataset.h"
#include "core/file_util.h"
#include "core/sha256.h"
#include "server/sparse_table_file.h"
#include "core/spec.h"
#include "models/model.h"

namespace tessera {

namespace {

// The directories MakeTempDir made, removed when the test program ends with
// every test passed (kept after a failure, to look at, and always with
// TESSERA_KEEP_TEST_DIRS=1): without it, every run of the suite left its
// runs, checkpoints and data behind, tens of gigabytes after a few hundred.
class TempDirs {
 public:
  static TempDirs& Get() {
    static TempDirs dirs;  // made after GoogleTest's UnitTest, so it goes before it
    return dirs;
  }
  void Add(const std::string& dir) {
    std::lock_guard<std::mutex> lock(mu_);
    dirs_.push_back(dir);
  }
  ~TempDirs() {
    const char* keep = std::getenv("TESSERA_KEEP_TEST_DIRS");
    if ((keep != nullptr && std::string(keep) == "1") || !::testing::UnitTest::GetInstance()->Passed()) return;
    for (const std::string& dir : dirs_) {
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    }
  }

 private:
  TempDirs() { ::testing::UnitTest::GetInstance(); }
  std::mutex mu_;
  std::vector<std::string> dirs_;
};

}  // namespace

std::string MakeTempDir(const std::string& prefix) {
  std::random_device rd;
  std::string dir = ::testing::TempDir() + "/" + prefix + "-" + std::to_string(getpid()) + "-" + std::to_string(rd());
  CHECK(MakeDirs(dir).ok());
  TempDirs::Get().Add(dir);
  return dir;
}

ScopedTestDir::ScopedTestDir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  path_ = MakeTempDir(std::string(info->test_suite_name()) + "_" + info->name());
}

ScopedTestDir::~ScopedTestDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

void WriteGzText(const std::string& path, const std::string& text) {
  gzFile file = gzopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr) << path;
  ASSERT_EQ(gzwrite(file, text.data(), static_cast<unsigned>(text.size())), static_cast<int>(text.size()));
  ASSERT_EQ(gzclose(file), Z_OK);
}

CommandResult RunTessera(const std::vector<std::string>& args, int timeout_s) {
  const std::string out_path = MakeTempDir("cmd") + "/output.txt";
  std::vector<std::string> full = {TesseraBinary()};
  full.insert(full.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : full) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    execv(argv[0], argv.data());
    _exit(127);
  }
  CommandResult result;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      result.output = "(killed after timeout)\n";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  auto text = ReadFileToString(out_path);
  if (text.ok()) result.output += *text;
  return result;
}

namespace {

// Fields of /proc/PID/stat after the command name: state, ppid, ...
bool ReadStat(int pid, char* state, int* ppid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream rest(text.substr(close + 1));
  return static_cast<bool>(rest >> *state >> *ppid);
}

std::vector<int> AllPids() {
  std::vector<int> pids;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return pids;
  while (dirent* e = readdir(proc)) {
    const int pid = atoi(e->d_name);
    if (pid > 0) pids.push_back(pid);
  }
  closedir(proc);
  return pids;
}

}  // namespace

std::map<std::string, std::string> SparseTableDigests(const std::string& checkpoint_dir) {
  auto manifest = ReadManifest(checkpoint_dir);
  EXPECT_TRUE(manifest.ok()) << manifest.status().ToString();
  if (!manifest.ok()) return {};
  std::map<std::string, std::string> digests;
  for (const proto::ServerPart& part : manifest->servers()) {
    const std::string part_dir = checkpoint_dir + "/" + part.dir();
    for (int t = 0; t < manifest->spec().model().sparse_table_size(); ++t) {
      auto chain = ReadSparseTableChain(part_dir, t);  // for the rows' size
      EXPECT_TRUE(chain.ok()) << chain.status().ToString();
      if (!chain.ok()) return {};
      const size_t row_bytes = sizeof(float) * (chain->front().dim + chain->front().state_floats);
      Sha256 sha;
      auto header = ReadCheckpointSparseTable(part_dir, t, [&](uint64_t id, const float* row, int64_t last_step) {
        sha.Update(&id, sizeof(id));
        sha.Update(&last_step, sizeof(last_step));
        sha.Update(row, row_bytes);
        return OkStatus();
      });
      EXPECT_TRUE(header.ok()) << header.status().ToString();
      if (!header.ok()) return {};
      digests[part.dir() + "/sparse-" + std::to_string(t)] = sha.HexDigest();
    }
  }
  return digests;
}

std::map<std::string, std::string> NewestCheckpointTableRows(const std::string& run) {
  std::string note;
  auto checkpoint = ResolveCheckpoint(run, &note);
  EXPECT_TRUE(checkpoint.ok()) << checkpoint.status().ToString();
  if (!checkpoint.ok()) return {};
  return SparseTableDigests(*checkpoint);
}

std::vector<int> ChildrenOf(int parent) {
  std::vector<int> children;
  for (int pid : AllPids()) {
    char state;
    int ppid;
    if (ReadStat(pid, &state, &ppid) && ppid == parent && state != 'Z') children.push_back(pid);
  }
  return children;
}

bool IsRunning(int pid) {
  char state;
  int ppid;
  return ReadStat(pid, &state, &ppid) && state != 'Z';
}

std::string CommandLine(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  std::string cmd = s.str();
  for (char& c : cmd) {
    if (c == '\0') c = ' ';
  }
  return cmd;
}

std::vector<int> ProcessesMatching(const std::string& needle) {
  std::vector<int> pids;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return pids;
  while (dirent* e = readdir(proc)) {
    const int pid = atoi(e->d_name);
    if (pid <= 0 || pid == getpid()) continue;
    std::ifstream in("/proc/" + std::string(e->d_name) + "/cmdline", std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    std::string cmd = s.str();
    for (char& c : cmd) {
      if (c == '\0') c = ' ';
    }
    // A zombie has an empty cmdline; it is no longer running.
    if (!cmd.empty() && cmd.find(needle) != std::string::npos) pids.push_back(pid);
  }
  closedir(proc);
  return pids;
}

const char kCnnModel[] = R"(
  layer { conv2d { out_channels: 4 kernel_size: 3 padding: 1 } }
  layer { batch_norm {} }
  layer { relu {} }
  layer { max_pool2d { kernel_size: 2 } }
  layer { conv2d { out_channels: 6 kernel_size: 3 stride: 2 bias: false } }
  layer { relu {} }
  layer { dropout { p: 0.2 } }
  layer { flatten {} }
  layer { linear { out_features: 16 } }
  layer { batch_norm { epsilon: 0.001 } }
  layer { relu {} }
  layer { linear { out_features: 10 } }
)";

const char kMlpModel[] = R"(
  layer { linear { out_features: 32 } }
  layer { relu {} }
  layer { dropout {} }
  layer { linear { out_features: 10 bias: false } }
)";

proto::ModelSpec ParseModel(const std::string& layers) {
  auto spec = ParseJobSpec("model {" + layers + "}", "test");
  EXPECT_TRUE(spec.ok()) << spec.status().ToString();
  return spec.ok() ? spec->model() : proto::ModelSpec();
}

std::vector<float> InferLogits(const proto::ModelSpec& spec, const std::vector<int64_t>& input_shape,
                               const std::vector<float>& params, const std::vector<float>& x, int64_t batch) {
  auto model = Model::Create(spec, input_shape, 10);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  if (!model.ok()) return {};
  EXPECT_EQ((*model)->num_keys(), params.size());
  std::copy(params.begin(), params.end(), (*model)->params());
  const float* logits = (*model)->Infer(x.data(), batch);
  return std::vector<float>(logits, logits + batch * 10);
}

std::string FileText(const std::string& path) {
  auto text = ReadFileToString(path);
  return text.ok() ? *text : std::string();
}

void WriteTinyImageData(const std::string& dir, uint32_t train, uint32_t test) {
  for (const auto& [prefix, n] : {std::pair<std::string, uint32_t>{"train", train}, {"t10k", test}}) {
    std::vector<uint8_t> pixels(n * 16), labels(n);
    for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 7);
    for (uint32_t i = 0; i < n; ++i) labels[i] = static_cast<uint8_t>(i % 10);
    EXPECT_OK(WriteIdxFile(dir + "/" + prefix + "-images-idx3-ubyte.gz", {n, 4, 4}, pixels));
    EXPECT_OK(WriteIdxFile(dir + "/" + prefix + "-labels-idx1-ubyte.gz", {n}, labels));
  }
}

bool WaitUntil(const std::function<bool()>& done, int timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return done();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

bool WaitForText(const std::string& path, const std::string& text, int timeout_s) {
  return WaitUntil([&] { return FileText(path).find(text) != std::string::npos; }, timeout_s);
}

std::string WaitForPortFile(const std::string& path) {
  std::string port;
  WaitUntil([&] {
    const std::string text = FileText(path);
    if (text.empty() || text.back() != '\n') return false;
    port = text.substr(0, text.size() - 1);
    return true;
  });
  return port;
}

ServeProcess StartServe(const std::vector<std::string>& args) {
  ServeProcess serve;
  serve.log = MakeTempDir("serve-log") + "/serve.log";
  std::vector<std::string> full = {TesseraBinary(), "serve", "--port", "0"};
  full.insert(full.end(), args.begin(), args.end());
  auto child = ChildProcess::Start("serve", full, serve.log);
  EXPECT_TRUE(child.ok()) << child.status().ToString();
  if (!child.ok()) return serve;
  serve.process = std::move(child).value();
  const std::string marker = "serving on 127.0.0.1:";
  for (int i = 0; i < 600; ++i) {
    const std::string text = FileText(serve.log);
    if (const size_t at = text.find(marker); at != std::string::npos) {
      serve.port = std::atoi(text.c_str() + at + marker.size());
      break;
    }
    if (serve.process->Poll().has_value()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_GT(serve.port, 0) << FileText(serve.log);
  return serve;
}

}  // namespace tessera
