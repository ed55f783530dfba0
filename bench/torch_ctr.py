#!/usr/bin/python3
"""PyTorch reference for Tessera's click-through-rate model (issue 16).

Run with Debian's interpreter, which has python3-torch:

    /usr/bin/python3 bench/torch_ctr.py --train data/criteo/train.tsv.gz \
        --test data/criteo/test.tsv.gz --json

The model is examples/criteo-ctr.pbtxt's, in one process and one thread:

    13 integer fields, each x -> log(1 + x) for x > 0, else 0 (missing too)
    26 categorical fields, each a bag of one id (an empty field: an empty
       bag, zeros) of one shared table of 16 floats per row, rows uniform in
       +-0.01 (SparseTableSpec.init_bound), combined by SUM
    MLP (13 + 26 * 16) -> 128 -> ReLU -> 64 -> ReLU -> 1, PyTorch's default
       initialization (Tessera's), BCEWithLogitsLoss
    nn.EmbeddingBag(sparse=True) stepped by torch.optim.Adagrad (lr 0.05,
       PyTorch's Adagrad is Tessera's ADAGRAD); the MLP by Adam (lr 0.001)

Ids: Tessera hashes each categorical value with field-salted FNV-1a 64
(core/criteo_format.h, CriteoId) and creates a row when an id is first seen.
Here each distinct (field, value) gets a row index when the files are read,
which is the same table up to FNV-1a collisions (none expected at these
sizes); ids seen only in the test file keep their initial rows, as
Tessera's rows that were never pushed.

--batch is the examples per step; ctr_compare.sh passes Tessera's global
batch (batch_size x workers), so that both take the same number of optimizer
steps per epoch. Training samples/s counts the training loop only (reading
the files and evaluation excluded), as Tessera's summary.json does. Test AUC
is exact (ties counted as half) and log loss clamps p to [1e-7, 1 - 1e-7].

Progress goes to stderr; with --json one JSON line goes to stdout.
"""

import argparse
import gzip
import json
import math
import os
import sys
import time

os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

INTEGER_FIELDS = 13
CATEGORICAL_FIELDS = 26


def read_criteo(path, ids, max_rows):
    """Labels [n], numeric [n, 13] and the per-field row indexes [n, 26]
    (-1: missing) of a Criteo file; `ids` maps (field, value) to a row and
    grows with every new value."""
    opener = gzip.open if path.endswith(".gz") else open
    labels, numeric, rows = [], [], []
    with opener(path, "rt") as f:
        for line_number, line in enumerate(f, 1):
            if max_rows and len(labels) >= max_rows:
                break
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 1 + INTEGER_FIELDS + CATEGORICAL_FIELDS:
                sys.exit(f"{path}:{line_number}: {len(fields)} fields, expected 40")
            labels.append(float(fields[0]))
            numeric.append([math.log1p(int(v)) if v and int(v) > 0 else 0.0
                            for v in fields[1:1 + INTEGER_FIELDS]])
            row = []
            for c, value in enumerate(fields[1 + INTEGER_FIELDS:]):
                if not value:
                    row.append(-1)
                    continue
                row.append(ids.setdefault((c, value), len(ids)))
            rows.append(row)
    return (torch.tensor(labels, dtype=torch.float32),
            torch.tensor(numeric, dtype=torch.float32),
            torch.tensor(rows, dtype=torch.int64))


class CtrModel(nn.Module):
    def __init__(self, num_rows, dim):
        super().__init__()
        self.table = nn.EmbeddingBag(num_rows, dim, mode="sum", sparse=True)
        nn.init.uniform_(self.table.weight, -0.01, 0.01)
        self.mlp = nn.Sequential(
            nn.Linear(INTEGER_FIELDS + CATEGORICAL_FIELDS * dim, 128), nn.ReLU(),
            nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 1))
        self.dim = dim

    def forward(self, numeric, rows):
        # One bag per (example, field): the present ids, then the offsets of
        # every bag (an empty bag, a missing value, sums to zeros).
        flat = rows.reshape(-1)
        present = flat >= 0
        counts = present.to(torch.int64)
        offsets = torch.cumsum(counts, 0) - counts
        bags = self.table(flat[present], offsets)
        x = torch.cat([numeric, bags.reshape(rows.shape[0], -1)], dim=1)
        return self.mlp(x).squeeze(1)


def auc_and_log_loss(labels, logits):
    p = torch.sigmoid(logits.double()).numpy()
    y = labels.numpy()
    order = np.argsort(p, kind="mergesort")
    p_sorted, y_sorted = p[order], y[order]
    # Ranks with ties averaged, then the Mann-Whitney U statistic.
    ranks = np.empty(len(p))
    i = 0
    while i < len(p):
        j = i
        while j + 1 < len(p) and p_sorted[j + 1] == p_sorted[i]:
            j += 1
        ranks[i:j + 1] = (i + j) / 2.0 + 1
        i = j + 1
    positives = y_sorted.sum()
    negatives = len(y) - positives
    auc = (ranks[y_sorted == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives)
    q = np.clip(p, 1e-7, 1 - 1e-7)
    log_loss = float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))
    return float(auc), log_loss


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--max-train", type=int, default=0, help="first N training rows (0: all)")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--table-lr", type=float, default=0.05)
    parser.add_argument("--dense-lr", type=float, default=0.001)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    ids = {}
    train = read_criteo(args.train, ids, args.max_train)
    test = read_criteo(args.test, ids, 0)
    print(f"read {len(train[0])} training and {len(test[0])} test rows, {len(ids)} ids, "
          f"in {time.perf_counter() - start:.1f} s", file=sys.stderr)

    model = CtrModel(len(ids), args.dim)
    table_optimizer = torch.optim.Adagrad(model.table.parameters(), lr=args.table_lr)
    dense_optimizer = torch.optim.Adam(model.mlp.parameters(), lr=args.dense_lr)
    loss_fn = nn.BCEWithLogitsLoss()
    labels, numeric, rows = train
    n = len(labels)
    trained, train_seconds = 0, 0.0
    for epoch in range(args.epochs):
        order = torch.randperm(n)
        epoch_start = time.perf_counter()
        for first in range(0, n, args.batch):
            batch = order[first:first + args.batch]
            loss = loss_fn(model(numeric[batch], rows[batch]), labels[batch])
            table_optimizer.zero_grad()
            dense_optimizer.zero_grad()
            loss.backward()
            table_optimizer.step()
            dense_optimizer.step()
            trained += len(batch)
        train_seconds += time.perf_counter() - epoch_start
        print(f"epoch {epoch + 1}: {trained / train_seconds:.0f} samples/s", file=sys.stderr)

    with torch.no_grad():
        logits = torch.cat([model(test[1][i:i + 4096], test[2][i:i + 4096]) for i in range(0, len(test[0]), 4096)])
    auc, log_loss = auc_and_log_loss(test[0], logits)
    result = {"samples_per_sec": trained / train_seconds, "train_seconds": train_seconds, "examples": trained,
              "test_auc": auc, "test_log_loss": log_loss, "batch": args.batch, "ids": len(ids)}
    print(f"PyTorch: {result['samples_per_sec']:.0f} samples/s, test AUC {auc:.4f}, log loss {log_loss:.4f}",
          file=sys.stderr)
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
