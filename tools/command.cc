#include "tools/command.h"

#include <gflags/gflags.h>
#include <glog/logging.h>

#include <algorithm>
#include <iostream>

namespace tessera {
namespace {

std::string Dashed(std::string name) {
  std::replace(name.begin(), name.end(), '_', '-');
  return name;
}

bool IsBoolFlag(const std::string& name) {
  gflags::CommandLineFlagInfo info;
  return gflags::GetCommandLineFlagInfo(name.c_str(), &info) && info.type == "bool";
}

}  // namespace

const std::vector<std::string>& CommonFlags() {
  static const std::vector<std::string> kFlags = {"v", "minloglevel"};
  return kFlags;
}

StatusOr<ParsedArgs> ParseArgs(const Command& command, int argc, char** argv) {
  ParsedArgs parsed;
  std::vector<std::string> allowed = command.flags;
  allowed.insert(allowed.end(), command.hidden_flags.begin(), command.hidden_flags.end());
  allowed.insert(allowed.end(), CommonFlags().begin(), CommonFlags().end());
  bool only_positional = false;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (only_positional || arg.size() < 2 || arg[0] != '-') {
      parsed.positional.push_back(arg);
      continue;
    }
    if (arg == "--") {
      only_positional = true;
      continue;
    }
    if (arg == "-h" || arg == "--help" || arg == "-help") {
      parsed.help = true;
      continue;
    }
    std::string body = arg.substr(arg[1] == '-' ? 2 : 1);
    std::string name = body, value;
    bool has_value = false;
    if (const size_t eq = body.find('='); eq != std::string::npos) {
      name = body.substr(0, eq);
      value = body.substr(eq + 1);
      has_value = true;
    }
    std::replace(name.begin(), name.end(), '-', '_');
    if (!has_value && name.rfind("no", 0) == 0 && IsBoolFlag(name.substr(2)) &&
        std::count(allowed.begin(), allowed.end(), name.substr(2)) > 0) {
      name = name.substr(2);
      value = "false";
      has_value = true;
    }
    if (std::count(allowed.begin(), allowed.end(), name) == 0) {
      return InvalidArgumentError("unknown flag --" + Dashed(name) + " (see 'tessera " + command.name + " --help')");
    }
    if (!has_value) {
      if (IsBoolFlag(name)) {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return InvalidArgumentError("flag --" + Dashed(name) + " needs a value");
      }
    }
    if (gflags::SetCommandLineOption(name.c_str(), value.c_str()).empty()) {
      gflags::CommandLineFlagInfo info;
      gflags::GetCommandLineFlagInfo(name.c_str(), &info);
      return InvalidArgumentError("flag --" + Dashed(name) + " wants a value of type " + info.type + ", got '" + value + "'");
    }
    parsed.set_flags.insert(name);
  }
  return parsed;
}

std::string CommandHelp(const Command& command) {
  std::string out = std::string("usage: ") + command.usage + "\n";
  if (!command.flags.empty()) out += "\nflags:\n";
  for (const std::string& name : command.flags) {
    gflags::CommandLineFlagInfo info;
    if (!gflags::GetCommandLineFlagInfo(name.c_str(), &info)) continue;
    out += "  --" + Dashed(name);
    if (info.type != "bool") out += "=" + info.type;
    if (auto own = command.flag_help.find(name); own != command.flag_help.end()) {
      out += "\n      " + own->second + "\n";
      continue;
    }
    out += "\n      " + info.description;
    out += " (default: " + (info.default_value.empty() ? std::string("none") : info.default_value) + ")\n";
  }
  return out;
}

const Command& FindCommand(const char* name) {
  for (const Command& c : Commands()) {
    if (std::string(c.name) == name) return c;
  }
  LOG(FATAL) << "no command " << name;
}

int UsageError(const Command& command, const std::string& message) {
  std::cerr << "tessera " << command.name << ": " << message << std::endl;
  return kExitUsage;
}

const std::vector<Command>& Commands() {
  static const std::vector<Command> kCommands = {
      {"train", "run a job on a local cluster of processes on 127.0.0.1",
       "tessera train SPEC.pbtxt [flags]\n\n"
       "Starts 1 scheduler, the spec's servers and workers as child processes on 127.0.0.1,\n"
       "streams progress, and prints the result. Flags override the spec's fields. Everything\n"
       "lands in the run directory: the resolved spec, a log per role, metrics.jsonl, summary.json,\n"
       "params.bin, checkpoints/. --threads 0 divides the cores among the workers. Each worker is a\n"
       "process that loads the data set: more than 4 per core, or more than the available memory\n"
       "holds, are refused (exit 2) unless --force is given. A lost worker is\n"
       "replaced; a lost server or scheduler rolls the job back to its newest checkpoint (at most\n"
       "--max-restarts times). Ctrl-C once: a final checkpoint (BSP), then exit 130; twice: stop now.",
       {"run_dir", "name", "servers", "workers", "epochs", "seed", "batch_size", "learning_rate", "consistency",
        "data_dir", "max_train_examples", "max_test_examples", "threads", "overlap_push", "overlap_pull", "device", "progress", "max_restarts",
        "force", "curve"},
       RunTrain,
       {},
       /*hidden=*/false,
       {"test_checkpoint_write_delay_ms", "test_step_delay_ms", "test_step_delay_rank", "test_spill_writes_before_full",
        "test_spill_free_bytes"}},
      {"resume", "continue a job from its newest intact checkpoint (or a given one)",
       "tessera resume RUN_DIR_OR_CHECKPOINT [flags]\n\n"
       "Continues the job in local mode, in the same run directory, exactly where the checkpoint\n"
       "left off. Given a run directory (or its checkpoints/latest) it takes the newest intact\n"
       "checkpoint and says which.\n"
       "The servers may change in number (they re-split the keys on load), and so may the workers\n"
       "when the checkpoint was cut at an epoch's end; --epochs may grow. Failures, Ctrl-C,\n"
       "--threads 0 and the limit on workers (--force) work as in 'tessera train'.",
       {"epochs", "servers", "workers", "threads", "overlap_push", "overlap_pull", "device", "progress", "max_restarts", "curve",
        "force"},
       RunResume},
      {"inspect", "show what a checkpoint holds, verifying every checksum",
       "tessera inspect CHECKPOINT_OR_RUN_DIR [--json]\n\n"
       "Verifies every file against the manifest, reads every slice back, and prints step, epoch,\n"
       "optimizer, sizes, each tensor (name, shape, bytes, sha256) and params_sha256 (the digest\n"
       "summary.json gives for the same parameters). A run directory or its checkpoints/latest\n"
       "stands for the newest intact checkpoint.",
       {"json"},
       RunInspect},
      {"export", "export a checkpoint's model as ONNX into a versioned model repository",
       "tessera export CHECKPOINT_OR_RUN_DIR --out MODEL_REPO/NAME [flags]\n\n"
       "Verifies the checkpoint (a run directory or its checkpoints/latest gives the newest intact\n"
       "one; with --best, a run directory gives the checkpoint of its best epoch by the validation\n"
       "metric, summary.json's best_checkpoint), evaluates the model on the spec's test set, and\n"
       "writes MODEL_REPO/NAME/VERSION/model.onnx\n"
       "and manifest.json, VERSION being the next free integer (1, 2, ...; the layout Triton reads),\n"
       "all at once or not at all.\n"
       "The ONNX input 'input' [N, C, H, W] takes values normalized as in training,\n"
       "(pixel * scale - mean) / std, scale 1/255 for byte images (1 for int32 ones): the manifest\n"
       "and the model's metadata give scale, mean and std. A CSV/TSV or image-folder model's input is\n"
       "preprocessed as its manifest records (the columns with their fill values and scaling, read\n"
       "again from the training files; the image size, channels, mean and std; the class names), which\n"
       "tessera predict and tessera serve apply to raw rows and images. Output 'logits' [N, classes], and\n"
       "'probabilities' (softmax; --noprobabilities leaves it out). Optional steps, in this order:\n"
       "--prune-sparsity S prunes: unstructured (the fraction S of all Conv2d/Linear weights of the\n"
       "smallest |w| become 0) or structured (each hidden layer loses the fraction S of its output\n"
       "channels or neurons of the smallest L1 norm: a smaller model). --fine-tune-epochs E then\n"
       "trains the pruned model E epochs on a local cluster, as 'tessera train' would (--servers,\n"
       "--workers, --threads, ... apply; pruned weights stay 0), in a temporary run directory.\n"
       "--quantize fp16 stores every parameter as float16 (the graph computes in float32); --quantize\n"
       "int8 folds each BatchNorm after a Conv2d or Linear into it, then makes every Conv2d and Linear\n"
       "an int8 layer: weights per output channel, inputs calibrated on --calibration-batches batches\n"
       "of training examples, written as ONNX QuantizeLinear/DequantizeLinear, which tessera serve and\n"
       "predict compute in int8 on the CPU. The manifest gives the test accuracy after each step.\n"
       "A model over a sparse table (Criteo data) carries the table's rows, gathered from every\n"
       "server part of the checkpoint; past --external-data-threshold-bytes (a little under 2 GiB)\n"
       "its largest tensors go to ONNX external data, model.onnx.data beside model.onnx.\n"
       "docs/FORMATS.md describes the files.",
       {"out", "best", "probabilities", "evaluate", "data_dir", "max_test_examples", "quantize", "prune_sparsity",
        "external_data_threshold_bytes",
        "prune_mode", "fine_tune_epochs", "calibration_batches", "servers", "workers", "batch_size",
        "learning_rate", "max_train_examples", "threads", "device", "progress", "max_restarts", "force"},
       RunExport},
      {"serve", "serve a model repository over HTTP (KServe v2 REST protocol)",
       "tessera serve --model-repo DIR [--port 8500] [--host 127.0.0.1] [flags]\n\n"
       "Loads every version of every model in DIR (DIR/NAME/VERSION/model.onnx and manifest.json, as\n"
       "tessera export writes them) and answers the KServe v2 REST protocol: GET /v2/health/live,\n"
       "/v2/health/ready, /v2/models/NAME[/versions/V] (metadata), POST /v2/models/NAME[/versions/V]/infer\n"
       "(the newest version unless V is given; input 'input' as FP32, normalized, or UINT8 pixels, which\n"
       "the server normalizes with the manifest's mean and std; a table model also takes one input per\n"
       "column, FP32/FP64/INT32/INT64, and an image model 'image', BYTES of base64 PNG or JPEG files, both\n"
       "preprocessed as the manifest says, as tessera predict does), and GET /metrics (Prometheus). Concurrent\n"
       "requests are batched. DIR is scanned every --poll-interval-ms: a new version is loaded completely,\n"
       "then served; requests in flight finish on the version they started with. --port 0 takes a free\n"
       "port; the chosen one is printed as 'serving on HOST:PORT'. Bad requests get a 4xx and one-line\n"
       "JSON {\"error\": ...}. SIGINT/SIGTERM stop it (exit 130). Defaults here: --host 127.0.0.1,\n"
       "--port 8500.\n"
       "Limits per client: a body over --max-request-bytes gets 413 before it is sent; a bad or\n"
       "conflicting Content-Length 400; a request whose head or body is slower than\n"
       "--header-timeout-ms / --body-timeout-ms 408; past --max-inflight-bytes of bodies, or beyond\n"
       "--http-threads connections, 503 (the health endpoints are answered all the same).",
       {"model_repo", "host", "port", "max_batch_size", "max_batch_delay_ms", "poll_interval_ms", "http_threads",
        "max_request_bytes", "max_inflight_bytes", "header_timeout_ms", "body_timeout_ms", "device"},
       RunServe,
       {{"device", "where models run: auto (a CUDA GPU when there is one, else the CPU), cpu, cuda; int8 models "
                   "run on the CPU whatever this says (default: auto)"}}},
      {"predict", "classify an IDX file, a CSV/TSV table or image files with an exported model, in parallel",
       "tessera predict MODEL_DIR INPUT --out FILE [--workers N] [--labels LABELS] [flags]\n\n"
       "Runs the model of MODEL_DIR (MODEL_REPO/NAME: its newest version that loads; or one version,\n"
       "MODEL_REPO/NAME/VERSION, as tessera export writes them) on every example of INPUT, made into\n"
       "the model's input as training made it (the version's manifest.json says how): for an IDX model\n"
       "an IDX images file (gzip or plain, such as t10k-images-idx3-ubyte.gz); for a table model a\n"
       "CSV or TSV file with a header (columns found by name, extra ones ignored; its label column, when\n"
       "there, gives the accuracy); for an image model a PNG or JPEG file, or a folder: DIR/CLASS/IMAGE\n"
       "when it holds folders (the classes give the accuracy), else DIR/IMAGE. Writes FILE: CSV, a\n"
       "header row, then one row per example in INPUT's order, 'index,class,prob_0,...' (the predicted\n"
       "class and the softmax probabilities), then class_name when the model names its classes and file\n"
       "for images. With --workers N, N child processes each run a contiguous part of INPUT; the result\n"
       "is the same for any N (at the same --batch-size and --threads). FILE appears complete or not at\n"
       "all; on any failure an existing FILE is left as it was. A bad input (a missing column, a field\n"
       "that is not a number, an image that does not decode) is one line naming it, exit 2.\n"
       "--labels LABELS (an IDX labels file, IDX models) adds the accuracy to the summary line.\n"
       "docs/FORMATS.md describes the file.",
       {"out", "workers", "batch_size", "threads", "labels", "progress", "device"},
       RunPredict,
       {{"out", "the CSV file to write (required; its directory must exist)"},
        {"workers", "worker processes, each running a contiguous part of INPUT (1: none, the command runs the "
                    "model itself; default: 1)"},
        {"batch_size", "images per model pass (default: 64)"},
        {"threads", "compute threads per worker (0: the cores divided among the workers; default: 0)"},
        {"progress", "progress on stderr: auto (a live line on a terminal, none otherwise), live, plain (a line "
                     "every few seconds), none (default: auto)"},
        {"device", "where the model runs: auto (a CUDA GPU when there is one, else the CPU), cpu, cuda; int8 "
                   "models run on the CPU whatever this says (default: auto)"}},
       /*hidden=*/false,
       {"test_worker_fault"}},
      {"predict-worker", "internal: one worker process of tessera predict",
       "tessera predict-worker VERSION_DIR INPUT --out PART --range BEGIN:END [flags]\n\n"
       "Internal (tessera predict starts it): writes the CSV rows of INPUT's images BEGIN..END-1, without\n"
       "header, to PART.",
       {"out", "range", "batch_size", "threads", "device"},
       RunPredictWorker,
       {},
       /*hidden=*/true,
       {"test_worker_fault"}},
      {"scheduler", "run the scheduler of a cluster",
       "tessera scheduler --spec SPEC.pbtxt [flags]\n\n"
       "Listens for servers and workers, hands out key ranges and shards, and coordinates the job.\n"
       "--run-dir gets metrics.jsonl, summary.json and the checkpoints (without it none are taken);\n"
       "servers write their parts there, so on several machines it must be shared storage at the same\n"
       "path. Without CURVE keys it binds 127.0.0.1 (another address needs --insecure); with\n"
       "--curve-secret-key and --curve-allow-keys it binds 0.0.0.0 and admits only the listed keys.\n"
       "A server or worker beyond the job's count waits: a server as a spare for a rollback, a\n"
       "worker as a standby for the rank of a lost one. A lost worker's data not yet trained goes to\n"
       "the workers left. When a server is lost, the job rolls back to its newest checkpoint (or where\n"
       "it began, when there is none) and goes on once a replacement server registers (start one with\n"
       "`tessera server --scheduler HOST:PORT`) and the workers are back to their full count, at most\n"
       "--max-restarts times; after that a lost server ends the job.",
       {"spec", "host", "port", "port_file", "run_dir", "register_timeout", "resume_from", "max_restarts",
        "launcher_token_file", "cluster_token_file", "curve_secret_key", "curve_allow_keys", "insecure", "name", "servers",
        "workers", "epochs",
        "seed", "batch_size", "learning_rate", "consistency", "data_dir", "max_train_examples", "max_test_examples"},
       RunScheduler,
       {},
       /*hidden=*/false,
       {"test_spill_free_bytes"}},
      {"server", "run a parameter server of a cluster",
       "tessera server --scheduler HOST:PORT [flags]\n\n"
       "Holds the key ranges the scheduler assigns, applies the optimizer, serves workers, and writes its\n"
       "part of every checkpoint. It tells workers to connect to --host (default 127.0.0.1: give an\n"
       "address they can reach when they run on other machines). A server that registers when the job\n"
       "has all its servers waits as a spare (up to --register-timeout) and may take part after a\n"
       "rollback. Sparse tables with a memory budget keep the rows beyond it under --spill-dir.\n"
       "An address beyond loopback needs CURVE keys (--curve-secret-key, --curve-allow-keys: the\n"
       "workers' public keys, --scheduler-public-key) or --insecure.",
       {"scheduler", "host", "port", "register_timeout", "cluster_token_file", "spill_dir", "curve_secret_key",
        "curve_allow_keys", "scheduler_public_key", "insecure"},
       RunServer,
       {},
       /*hidden=*/false,
       {"test_checkpoint_write_delay_ms", "test_spill_writes_before_full"}},
      {"worker", "run a worker of a cluster",
       "tessera worker --scheduler HOST:PORT [flags]\n\n"
       "Trains on the shards the scheduler leases, pushing gradients to and pulling parameters from\n"
       "the servers. A worker that registers when the job has all its workers waits as a standby (up\n"
       "to --register-timeout) and takes the rank of a lost worker from the next phase on.",
       {"scheduler", "threads", "overlap_push", "overlap_pull", "device", "register_timeout", "reply_timeout", "params_out",
        "cluster_token_file", "curve_secret_key", "scheduler_public_key"},
       RunWorker,
       {},
       /*hidden=*/false,
       {"test_step_delay_ms", "test_step_delay_rank"}},
      {"keygen", "write a CurveZMQ key pair for a node of a cluster",
       "tessera keygen --out DIR [--name NAME]\n\n"
       "Writes DIR/NAME.secret (the secret key, mode 0600: give it to that node only, with\n"
       "--curve-secret-key) and DIR/NAME.pub (its public key: put it in the allow-list of the\n"
       "scheduler and servers, `cat DIR/*.pub > allowed.keys`, and give the scheduler's to every node\n"
       "with --scheduler-public-key). Never overwrites a key.",
       {"out", "name"},
       RunKeygen,
       {{"out", "the directory to write the key pair into, made when missing (required)"},
        {"name", "the key files' name, [A-Za-z0-9._-]+ (default: node)"}}},
  };
  return kCommands;
}

}  // namespace tessera
