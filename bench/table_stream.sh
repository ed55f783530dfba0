#!/bin/bash
# A CSV table of more than 2 GB trained with bounded worker memory (issue 15,
# "Data bigger than memory"): every worker streams the blocks of its shards,
# two in memory at most, so its peak resident memory (summary.json
# worker_peak_rss_bytes) stays under LIMIT_MB (600) whatever the table's size.
#
# The data is made here by bench/make_table_csv: ROWS rows (default
# 5,200,000) of FEATURES numeric features (default 64) and a label from a
# planted linear model over 10 classes, about 418 bytes a row (2.17 GB, more
# than 2 GiB, by default); a test file of 20,000 rows of the same model. It
# trains 1 epoch of a small MLP (FEATURES -> 64 -> 10) on 2 workers and 2
# servers, then prints the file's size, the scheduler's planning scan (its
# log's "planned in" figure: every record read once), the time from the
# launch until training starts (the launcher's check of the spec reads
# every record too: two scans in all), the training rate,
# the wall time, the workers' peak memory, and PASS or FAIL against LIMIT_MB (1e6 bytes; exit 1 on FAIL). The
# file is read from the page cache (it was just written), so the scans time
# the parsing, not the disk. The data is deleted at the end (WORK_DIR,
# default /tmp, needs about 2.2 GB free).
#
#   bash bench/table_stream.sh [BUILD_DIR] [ROWS] [FEATURES]
set -euo pipefail
build=${1:-build}
rows=${2:-5200000}
features=${3:-64}
limit_mb=${LIMIT_MB:-600}
work=$(mktemp -d "${WORK_DIR:-/tmp}/table-stream.XXXXXX")
trap 'rm -rf "$work"' EXIT

"$build/bench/make_table_csv" --rows "$rows" --features "$features" --classes 10 --seed 1 --out "$work/train.csv"
"$build/bench/make_table_csv" --rows 20000 --features "$features" --classes 10 --seed 1 --rows_seed 1 \
  --out "$work/test.csv" > /dev/null

cat > "$work/spec.pbtxt" <<SPEC
name: "table-stream"
model {
  layer { linear { out_features: 64 } }
  layer { relu {} }
  layer { linear { out_features: 10 } }
}
data { format: CSV dir: "$work" train_files: "train.csv" test_files: "test.csv" table { label_column: "label" } }
cluster { servers: 2 workers: 2 }
optimizer { type: SGD learning_rate: 0.05 momentum: 0.9 }
checkpoint { enabled: false }
batch_size: 256
epochs: 1
SPEC

launched=$(date +%s.%N)
"$build/tessera" train "$work/spec.pbtxt" --run-dir "$work/run" --threads 1 --progress none > "$work/train.out" 2>&1 ||
  { cat "$work/train.out"; exit 1; }
ended=$(date +%s.%N)

python3 - "$work" "$rows" "$launched" "$ended" "$limit_mb" <<'PY'
import datetime, json, os, re, sys
work, rows, launched, ended, limit_mb = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
size = os.path.getsize(f"{work}/train.csv")
summary = json.load(open(f"{work}/run/summary.json"))

def log_times(path):
    """(seconds since the epoch, message) of each glog line: I20261207 16:20:09.123456 PID FILE:LINE] ..."""
    for line in open(path, errors="replace"):
        m = re.match(r"[IWEF](\d{4})?(\d\d)(\d\d) (\d\d):(\d\d):(\d\d\.\d+) +\d+ \S+\] (.*)", line)
        if m:
            y, mo, d, h, mi, s, text = m.groups()
            t = datetime.datetime(int(y or datetime.date.today().year), int(mo), int(d), int(h), int(mi))
            yield t.timestamp() + float(s), text

# The scheduler's "job NAME: ... (planned in S s)" line: its planning read
# every record once in S s. Before it, the launcher's check of the spec read
# every record too: from the launch to the "all ... are in; starting" line,
# two scans and the processes' starts.
lines = list(log_times(f"{work}/run/logs/scheduler.log"))
planned = next(text for t, text in lines if text.startswith("job table-stream:"))
started_at = next(t for t, text in lines if text.startswith("all ") and text.endswith("starting"))
planning_scan = float(re.search(r"planned in ([0-9.e+-]+) s", planned).group(1))
mb = size / 1e6
scanned_mb = (size + os.path.getsize(f"{work}/test.csv")) / 1e6  # a scan reads the test file too
print(f"file            {size:,} bytes ({mb:.0f} MB), {rows:,} rows")
print(f"planning scan   {planning_scan:.1f} s ({scanned_mb / planning_scan:.0f} MB/s), the scheduler's")
print(f"before training {started_at - launched:.1f} s from the launch (two scans: the launcher's spec check, "
      f"then the scheduler's planning)")
print(f"training        {summary['train_seconds']:.1f} s, {summary['samples_per_sec']:,.0f} samples/s, "
      f"test accuracy {summary['test_accuracy']:.4f}")
print(f"wall            {ended - launched:.1f} s (launch to exit); summary.json wall_seconds {summary['wall_seconds']:.1f}")
peak = summary["worker_peak_rss_bytes"]
print(f"worker peak RSS {peak / 2**20:.1f} MiB ({peak:,} bytes)")
ok = 0 < peak < limit_mb * 1e6
print(f"{'PASS' if ok else 'FAIL'}: worker_peak_rss_bytes {'<' if ok else '>='} {limit_mb:.0f} MB")
sys.exit(0 if ok else 1)
PY
