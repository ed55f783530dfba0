#!/usr/bin/python3
"""PyTorch reference for Tessera's training benchmarks (Fashion-MNIST).

Run with Debian's interpreter, which has python3-torch:

    /usr/bin/python3 bench/torch_reference.py --model mlp --mode speed --steps 300 --json
    /usr/bin/python3 bench/torch_reference.py --model cnn --epochs 1 --max-train 10000
    /usr/bin/python3 bench/torch_reference.py --model mlp --mode speed --ddp 2 --steps 200

The models, data normalization, loss, initialization and optimizer are those of
Tessera's specs (examples/fmnist-*.pbtxt, proto/job.proto):

    mlp     784-256-ReLU-128-ReLU-10
    cnn     conv 32@5x5 pad 2, ReLU, maxpool 2, conv 64@5x5 pad 2, ReLU, maxpool 2,
            flatten, fc 3136->128, ReLU, fc 10
    cnn-bn  cnn with BatchNorm2d after each conv (before the ReLU)

PyTorch's default initialization (W and b uniform in +-1/sqrt(fan_in)) is the
one Tessera documents, so no explicit init is needed. The data are read with
gzip + numpy (no torchvision), scaled to [0,1] and normalized with
(x - 0.2860) / 0.3530.

Modes:
  train  shuffle every epoch (seeded), train --epochs passes, evaluate on the
         test set after the last epoch (or every epoch with --eval-every-epoch).
         samples/s counts training time only (evaluation excluded), as
         Tessera's summary.json does.
  speed  time --steps steps after --warmup-steps-bench untimed steps, on real
         shuffled batches; no evaluation.

--ddp N starts N processes (torch.distributed, gloo, 127.0.0.1, a free port),
each with 1 compute thread, DistributedDataParallel, a per-process batch of
--batch (global batch N * --batch) and a disjoint shard of each epoch's
permutation. DDP averages the gradients, which is what Tessera's BSP servers
do (sum of the workers' summed gradients / total examples).

Learning-rate schedules (--schedule, --warmup-steps/--warmup-epochs, --min-lr,
--step-epochs, --gamma) follow Tessera's OptimizerSpec: rate(t) = schedule(t) *
warmup(t) for update t = 0..T-1 over the whole run.

Progress goes to stderr; with --json one JSON line goes to stdout.
"""

import argparse
import gzip
import json
import math
import os
import socket
import sys
import time

os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

DATA_DIR = "/usr/share/datasets/fashion-mnist"
MEAN = 0.2860
STD = 0.3530


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- data


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[0:4], "big")
    if magic >> 8 != 0x08:  # unsigned byte data
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {magic:#x})")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {data.size} bytes of data, header says {dims}")
    return data.reshape(dims)


def load_split(data_dir, split, limit=0):
    images = read_idx(os.path.join(data_dir, f"{split}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(data_dir, f"{split}-labels-idx1-ubyte.gz"))
    if limit > 0:
        images, labels = images[:limit], labels[:limit]
    x = torch.from_numpy(images.astype(np.float32)).div_(255.0).sub_(MEAN).div_(STD)
    x = x.reshape(-1, 1, 28, 28).contiguous()
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


# ---------------------------------------------------------------- models


def build_model(name):
    if name == "mlp":
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 256), nn.ReLU(),
            nn.Linear(256, 128), nn.ReLU(),
            nn.Linear(128, 10))
    if name in ("cnn", "cnn-bn"):
        bn = name == "cnn-bn"

        def block(cin, cout):
            layers = [nn.Conv2d(cin, cout, kernel_size=5, padding=2)]
            if bn:
                layers.append(nn.BatchNorm2d(cout))  # momentum 0.1, eps 1e-5, as Tessera's defaults
            layers += [nn.ReLU(), nn.MaxPool2d(2)]
            return layers

        return nn.Sequential(
            *block(1, 32), *block(32, 64),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
            nn.Linear(128, 10))
    raise ValueError(f"unknown model {name!r}")


def warmup_updates(args, steps_per_epoch):
    if args.warmup_steps:
        return args.warmup_steps
    return int(math.floor(args.warmup_epochs * steps_per_epoch + 0.5))  # llround, as Tessera


def lr_factor(t, args, steps_per_epoch, total):
    """Multiplier of --lr for update t (0-based), as Tessera's servers compute
    it (OptimizerSpec in proto/job.proto): schedule(t) * warmup(t), where
    cosine is CosineAnnealingLR(T_max=total, eta_min=--min-lr) over the whole
    run (warm-up included), step is StepLR stepped per epoch, and the linear
    warm-up over W updates multiplies by (t + 1) / W for t < W."""
    t = min(max(t, 0), total - 1)
    f = 1.0
    if args.schedule == "cosine":
        lo = args.min_lr / args.lr
        f = lo + (1.0 - lo) * 0.5 * (1.0 + math.cos(math.pi * t / total))
    elif args.schedule == "step":
        f = args.gamma ** ((t // steps_per_epoch) // args.step_epochs)
    w = warmup_updates(args, steps_per_epoch)
    if t < w:
        f *= (t + 1) / w
    return f


# ---------------------------------------------------------------- training


def evaluate(model, x, y, batch=1000):
    model.eval()
    correct, loss_sum = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            out = model(x[i:i + batch])
            loss_sum += F.cross_entropy(out, y[i:i + batch], reduction="sum").item()
            correct += (out.argmax(1) == y[i:i + batch]).sum().item()
    model.train()
    return correct / len(y), loss_sum / len(y)


def epoch_shard(n, epoch, seed, rank, world):
    """This process's part of epoch `epoch`'s permutation: disjoint, equal-sized shards."""
    g = torch.Generator()
    g.manual_seed(seed * 1000003 + epoch)
    perm = torch.randperm(n, generator=g)
    per = n // world
    return perm[rank * per:(rank + 1) * per]


def allreduce_ms(model, reps=30):
    """Time of one gloo allreduce of a flat float32 tensor the size of the
    model's gradients (DDP's buckets hold them all at these sizes), in ms."""
    import torch.distributed as dist
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    buf = torch.zeros(n)
    for _ in range(5):
        dist.all_reduce(buf)
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(reps):
        dist.all_reduce(buf)
    return (time.perf_counter() - t0) / reps * 1e3


def run(args, rank=0, world=1):
    """Trains or times in this process; returns the result dict (rank 0) or None."""
    ddp = world > 1
    torch.set_num_threads(1 if ddp else args.threads)
    torch.manual_seed(args.seed)
    x_train, y_train = load_split(args.data_dir, "train", args.max_train)
    x_test, y_test = (None, None)
    if args.mode == "train":
        x_test, y_test = load_split(args.data_dir, "t10k", args.max_test)

    model = build_model(args.model)
    net = model
    if ddp:
        net = nn.parallel.DistributedDataParallel(model)  # broadcasts rank 0's parameters
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                          weight_decay=args.weight_decay)

    n = len(y_train)
    per_rank = n // world
    steps_per_epoch = math.ceil(per_rank / args.batch)
    if args.mode == "speed":
        total_steps = args.warmup_steps_bench + args.steps
    else:
        total_steps = steps_per_epoch * args.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: lr_factor(t, args, steps_per_epoch, total_steps))

    def batches():
        epoch = 0
        while True:
            idx = epoch_shard(n, epoch, args.seed, rank, world)
            for i in range(0, per_rank, args.batch):
                b = idx[i:i + args.batch]
                yield epoch, x_train.index_select(0, b), y_train.index_select(0, b)
            epoch += 1

    def step(xb, yb):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(xb), yb)
        loss.backward()
        opt.step()
        sched.step()
        return loss

    net.train()
    result = {
        "model": args.model, "mode": args.mode, "processes": world,
        "threads": 1 if ddp else args.threads, "batch": args.batch,
        "global_batch": args.batch * world, "lr": args.lr, "momentum": args.momentum,
        "weight_decay": args.weight_decay, "schedule": args.schedule,
        "warmup_steps": warmup_updates(args, steps_per_epoch),
        "min_lr": args.min_lr, "seed": args.seed,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__,
    }
    main = rank == 0

    if args.mode == "speed":
        it = batches()
        for _ in range(args.warmup_steps_bench):
            _, xb, yb = next(it)
            step(xb, yb)
        examples = 0
        if ddp:
            torch.distributed.barrier()
        t0 = time.perf_counter()
        for s in range(args.steps):
            _, xb, yb = next(it)  # batch gathering is timed, as in training
            loss = step(xb, yb)
            examples += len(yb)
            if main and args.progress_every and (s + 1) % args.progress_every == 0:
                log(f"step {s + 1}/{args.steps} loss {loss.item():.4f}")
        if ddp:
            torch.distributed.barrier()
        seconds = time.perf_counter() - t0
        result.update(steps=args.steps, epochs=0, seconds=seconds,
                      samples_per_sec=examples * world / seconds,
                      ms_per_step=seconds / args.steps * 1e3,
                      test_accuracy=None, epoch_seconds=[], train_loss=loss.item())
    else:
        epoch_seconds, train_seconds, examples = [], 0.0, 0
        acc, test_loss = None, None
        evals = []
        it = batches()
        for epoch in range(args.epochs):
            if ddp:
                torch.distributed.barrier()
            t0 = time.perf_counter()
            loss_sum, seen = 0.0, 0
            for s in range(steps_per_epoch):
                _, xb, yb = next(it)
                loss = step(xb, yb)
                loss_sum += loss.item() * len(yb)
                seen += len(yb)
                if main and args.progress_every and (s + 1) % args.progress_every == 0:
                    log(f"epoch {epoch + 1} step {s + 1}/{steps_per_epoch} "
                        f"loss {loss_sum / seen:.4f} lr {sched.get_last_lr()[0]:.5f}")
            if ddp:
                torch.distributed.barrier()
            sec = time.perf_counter() - t0
            epoch_seconds.append(sec)
            train_seconds += sec
            examples += seen * world
            msg = (f"epoch {epoch + 1}/{args.epochs}: {sec:.1f} s, {seen * world / sec:.0f} samples/s, "
                   f"train loss {loss_sum / seen:.4f} (rank 0)")
            if main and (args.eval_every_epoch or epoch + 1 == args.epochs):
                acc, test_loss = evaluate(model, x_test, y_test)
                evals.append({"epoch": epoch + 1, "test_accuracy": acc, "test_loss": test_loss})
                msg += f", test accuracy {acc:.4f}, test loss {test_loss:.4f}"
            if main:
                log(msg)
        result.update(steps=steps_per_epoch * args.epochs, epochs=args.epochs,
                      seconds=train_seconds, samples_per_sec=examples / train_seconds,
                      ms_per_step=train_seconds / (steps_per_epoch * args.epochs) * 1e3,
                      test_accuracy=acc, test_loss=test_loss,
                      train_loss=loss_sum / seen, epoch_seconds=epoch_seconds,
                      examples_per_epoch=per_rank * world)
        if args.eval_every_epoch:
            result["evaluations"] = evals

    if ddp:
        ms = allreduce_ms(model)
        result["allreduce_ms_per_step"] = ms  # gloo allreduce of all gradients, measured after the run
        result["allreduce_share"] = ms / result["ms_per_step"]
    return result if main else None


# ---------------------------------------------------------------- DDP launch


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddp_worker(rank, world, port, args, queue):
    import torch.distributed as dist
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    try:
        dist.init_process_group("gloo", rank=rank, world_size=world)
        result = run(args, rank, world)
        dist.barrier()
        dist.destroy_process_group()
        if rank == 0:
            queue.put(("ok", result))
    except BaseException as e:  # report, then die
        queue.put(("error", f"rank {rank}: {type(e).__name__}: {e}"))
        raise


def run_ddp(args):
    import torch.multiprocessing as mp
    ctx = mp.get_context("spawn")
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the spawned processes before they import torch
    queue = ctx.SimpleQueue()
    port = free_port()
    procs = [ctx.Process(target=ddp_worker, args=(r, args.ddp, port, args, queue))
             for r in range(args.ddp)]
    for p in procs:
        p.start()
    outcome = None
    while outcome is None:
        if not queue.empty():
            outcome = queue.get()
            break
        if any(p.exitcode not in (None, 0) for p in procs):
            break
        if all(p.exitcode == 0 for p in procs):
            break
        time.sleep(0.05)
    if outcome is None and not queue.empty():
        outcome = queue.get()
    if outcome is None or outcome[0] != "ok":
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join()
        raise SystemExit(f"DDP failed: {outcome[1] if outcome else 'a process exited early'}")
    for p in procs:
        p.join()
    return outcome[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["mlp", "cnn", "cnn-bn"], default="mlp")
    ap.add_argument("--mode", choices=["train", "speed"], default="train")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64, help="examples per process per step")
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--schedule", choices=["constant", "cosine", "step"], default="constant",
                    help="cosine: to --min-lr over all updates; step: times --gamma every --step-epochs epochs")
    ap.add_argument("--min-lr", type=float, default=0.0, help="cosine: the rate it ends at")
    ap.add_argument("--step-epochs", type=int, default=0, help="step: epochs between decays (required)")
    ap.add_argument("--gamma", type=float, default=0.1, help="step: decay factor")
    ap.add_argument("--warmup-steps", type=int, default=0,
                    help="linear warm-up over the first N updates: update t < N uses (t + 1) / N of the rate")
    ap.add_argument("--warmup-epochs", type=float, default=0.0,
                    help="warm-up of round(E * steps per epoch) updates (Tessera's warmup_epochs); "
                         "--warmup-steps wins when both are given")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1 per process with --ddp)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-train", type=int, default=0, help="use only the first N training examples (0: all)")
    ap.add_argument("--max-test", type=int, default=0, help="use only the first N test examples (0: all)")
    ap.add_argument("--steps", type=int, default=300, help="speed mode: timed steps")
    ap.add_argument("--warmup-steps-bench", type=int, default=20, help="speed mode: untimed steps first")
    ap.add_argument("--ddp", type=int, default=0, help="N processes with DistributedDataParallel (gloo)")
    ap.add_argument("--eval-every-epoch", action="store_true")
    ap.add_argument("--progress-every", type=int, default=200, help="progress line every N steps (0: none)")
    ap.add_argument("--data-dir", default=DATA_DIR)
    ap.add_argument("--json", action="store_true", help="print one JSON line on stdout")
    args = ap.parse_args()
    if args.batch < 1 or args.epochs < 1 or args.threads < 1 or args.steps < 1:
        ap.error("--batch, --epochs, --threads and --steps must be >= 1")
    if args.schedule == "step" and args.step_epochs < 1:
        ap.error("--schedule step needs --step-epochs >= 1")

    if args.ddp > 1:
        result = run_ddp(args)
    else:
        result = run(args)

    line = (f"{result['model']} {result['mode']}: {result['processes']} process(es) x "
            f"{result['threads']} thread(s), batch {result['batch']}: "
            f"{result['samples_per_sec']:.0f} samples/s ({result['ms_per_step']:.2f} ms/step)")
    if result.get("test_accuracy") is not None:
        line += f", test accuracy {result['test_accuracy']:.4f}"
    if "allreduce_ms_per_step" in result:
        line += f", allreduce {result['allreduce_ms_per_step']:.2f} ms/step"
    log(line)
    if args.json:
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
