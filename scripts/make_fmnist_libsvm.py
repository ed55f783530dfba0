#!/usr/bin/python3
"""Writes Fashion-MNIST as libsvm files, from Debian's dataset-fashion-mnist.

    python3 scripts/make_fmnist_libsvm.py OUT_DIR

OUT_DIR gets fashion-mnist_train.svm (60,000 lines) and fashion-mnist_test.svm
(10,000 lines): one image a line, its class (0-9), then its nonzero pixels
only, as libsvm's 1-based `index:value` (pixel p of the 784 is index p + 1,
its value the byte / 255, written with 6 significant digits). About half the
pixels of an image are zero, so the files hold about half the numbers a dense
layout would. examples/fmnist-libsvm.pbtxt trains on them. Only the standard
library is used; nothing is downloaded.
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


def libsvm_line(label, image):
    features = " ".join(f"{p + 1}:{v / 255:.6g}" for p, v in enumerate(image) if v != 0)
    return f"{label} {features}\n" if features else f"{label}\n"


def write_libsvm(split, out_path):
    (_, count, rows, cols), pixels = read_idx(f"{SOURCE}/{split}-images-idx3-ubyte.gz", 16)
    _, labels = read_idx(f"{SOURCE}/{split}-labels-idx1-ubyte.gz", 8)
    size = rows * cols
    temp = out_path + ".tmp"
    with open(temp, "w") as out:
        for k in range(count):
            out.write(libsvm_line(labels[k], pixels[k * size:(k + 1) * size]))
    os.replace(temp, out_path)  # never a half-written file under the real name
    print(f"wrote {out_path}: {count} lines")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_fmnist_libsvm.py OUT_DIR")
    if not os.path.exists(f"{SOURCE}/train-images-idx3-ubyte.gz"):
        sys.exit(f"{SOURCE} is missing: install Debian's dataset-fashion-mnist (scripts/install-deps.sh does)")
    os.makedirs(sys.argv[1], exist_ok=True)
    write_libsvm("t10k", os.path.join(sys.argv[1], "fashion-mnist_test.svm"))
    write_libsvm("train", os.path.join(sys.argv[1], "fashion-mnist_train.svm"))


if __name__ == "__main__":
    main()
