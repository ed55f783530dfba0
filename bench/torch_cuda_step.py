#!/usr/bin/env python3
"""PyTorch's training step of examples/fmnist-cnn(-bn).pbtxt on the GPU, to
put beside bench/cuda_model_bench (Tessera's Model::TrainBatch on CUDA).

Times, per step at --batch examples (random inputs, the same shapes):
  compute:   forward + backward with the batch already on the GPU;
  host api:  what TrainBatch does: upload the parameters and the batch from
             the host, forward + backward, download the gradients to the host
             (pinned buffers, as Tessera).
Each in plain FP32 (as Tessera: no TF32) and with PyTorch's defaults (TF32
convolutions allowed), cudnn.benchmark off.

  python3 bench/torch_cuda_step.py --model cnn --batch 64 --steps 200
"""
import argparse
import time

import torch
import torch.nn as nn


def make(model):
    bn = model == "cnn-bn"
    layers = []
    for cin, cout in ((1, 32), (32, 64)):
        layers.append(nn.Conv2d(cin, cout, 5, padding=2))
        if bn:
            layers.append(nn.BatchNorm2d(cout))
        layers += [nn.ReLU(), nn.MaxPool2d(2)]
    layers += [nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10)]
    return nn.Sequential(*layers)


def timed(fn, steps):
    for _ in range(20):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    torch.cuda.synchronize()
    return 1e3 * (time.perf_counter() - start) / steps


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["cnn", "cnn-bn"], default="cnn")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    torch.manual_seed(1)
    dev = torch.device("cuda")
    net = make(args.model).to(dev)
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    params = list(net.parameters())
    x_host = torch.randn(args.batch, 1, 28, 28).pin_memory()
    y_host = torch.randint(0, 10, (args.batch,)).pin_memory()
    p_host = [p.detach().cpu().pin_memory() for p in params]
    g_host = [torch.empty_like(p) for p in p_host]
    x_dev, y_dev = x_host.to(dev), y_host.to(dev)

    def compute():
        for p in params:
            p.grad = None
        loss_fn(net(x_dev), y_dev).backward()

    def host_api():
        with torch.no_grad():
            for p, h in zip(params, p_host):
                p.copy_(h, non_blocking=True)
        x, y = x_host.to(dev, non_blocking=True), y_host.to(dev, non_blocking=True)
        for p in params:
            p.grad = None
        loss_fn(net(x), y).backward()
        for p, g in zip(params, g_host):
            g.copy_(p.grad, non_blocking=True)
        torch.cuda.synchronize()

    torch.backends.cudnn.benchmark = False
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}: fmnist-{args.model}, batch {args.batch}")
    for name, tf32 in (("fp32", False), ("tf32 (defaults)", True)):
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        c, h = timed(compute, args.steps), timed(host_api, args.steps)
        print(f"  {name:16s} compute {c:7.3f} ms/step   host api {h:7.3f} ms/step ({args.batch / h * 1e3:8.0f} samples/s)")


if __name__ == "__main__":
    main()
