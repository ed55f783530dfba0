#!/usr/bin/python3
"""Writes Fashion-MNIST as CSV in Kaggle's layout, from Debian's dataset-fashion-mnist.

    python3 scripts/make_fmnist_csv.py OUT_DIR
    python3 scripts/make_fmnist_csv.py --footwear OUT_DIR

OUT_DIR gets fashion-mnist_train.csv (60,000 rows) and fashion-mnist_test.csv
(10,000 rows): a header "label,pixel1,...,pixel784", then one image a line,
its class (0-9) and its 784 pixel bytes. examples/fmnist-csv.pbtxt trains on
them.

With --footwear the label is binary instead: 1 for footwear (classes 5
Sandal, 7 Sneaker and 9 Ankle boot: 30% of the images), 0 for the rest, for
examples/fmnist-footwear.pbtxt (a binary task: sigmoid and binary
cross-entropy, AUC). Only the standard library is used; nothing is downloaded.
"""
import gzip
import os
import struct
import sys

SOURCE = "/usr/share/datasets/fashion-mnist"


def read_idx(path, header_bytes):
    with gzip.open(path, "rb") as f:
        header = f.read(header_bytes)
        return struct.unpack(">" + "I" * (header_bytes // 4), header), f.read()


FOOTWEAR = {5, 7, 9}  # Sandal, Sneaker, Ankle boot


def write_csv(split, out_path, footwear=False):
    (_, count, rows, cols), pixels = read_idx(f"{SOURCE}/{split}-images-idx3-ubyte.gz", 16)
    _, labels = read_idx(f"{SOURCE}/{split}-labels-idx1-ubyte.gz", 8)
    size = rows * cols
    temp = out_path + ".tmp"
    with open(temp, "w") as out:
        out.write("label," + ",".join(f"pixel{i + 1}" for i in range(size)) + "\n")
        for k in range(count):
            image = pixels[k * size:(k + 1) * size]
            label = int(labels[k] in FOOTWEAR) if footwear else labels[k]
            out.write(f"{label}," + ",".join(map(str, image)) + "\n")
    os.replace(temp, out_path)  # never a half-written file under the real name
    print(f"wrote {out_path}: {count} rows")


def main():
    args = sys.argv[1:]
    footwear = "--footwear" in args
    args = [a for a in args if a != "--footwear"]
    if len(args) != 1 or args[0].startswith("-"):
        sys.exit("usage: make_fmnist_csv.py [--footwear] OUT_DIR")
    out_dir = args[0]
    if not os.path.exists(f"{SOURCE}/train-images-idx3-ubyte.gz"):
        sys.exit(f"{SOURCE} is missing: install Debian's dataset-fashion-mnist (scripts/install-deps.sh does)")
    os.makedirs(out_dir, exist_ok=True)
    write_csv("t10k", os.path.join(out_dir, "fashion-mnist_test.csv"), footwear)
    write_csv("train", os.path.join(out_dir, "fashion-mnist_train.csv"), footwear)


if __name__ == "__main__":
    main()
