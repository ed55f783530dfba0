#!/usr/bin/python3
"""Writes Fashion-MNIST as image folders of PNG files, from Debian's dataset-fashion-mnist.

    python3 scripts/make_fmnist_images.py OUT_DIR [--per-class N]

examples/fmnist-images.pbtxt trains on the folders written to data/fmnist-images.

OUT_DIR gets train/ (from the 60,000 training images) and test/ (from the
10,000 test images), each with one folder per class named as Fashion-MNIST
names them (T-shirt_top, Trouser, Pullover, Dress, Coat, Sandal, Shirt,
Sneaker, Bag, Ankle_boot) holding 28x28 8-bit grayscale PNGs named by the
image's index in the IDX file (00042.png is image 42), so each file can be
traced back. --per-class N keeps the first N images of each class (in file
order) in each split; without it every image is written.

Tessera labels an image folder's classes in the bytewise order of their names
(core/image_folder.h), not in Fashion-MNIST's label order: Ankle_boot is
class 0 there.

Each file is written under a hidden temporary name (".NAME.tmp", which
image folder listings skip) and renamed into place, so an interrupted run
never leaves a half-written image under a real name; rerunning rewrites
everything. Only the standard library is used; nothing is downloaded.
"""
import argparse
import gzip
import os
import struct
import sys
import zlib

SOURCE = "/usr/share/datasets/fashion-mnist"
CLASS_NAMES = ["T-shirt_top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle_boot"]
SPLITS = [("train", "train"), ("test", "t10k")]  # (folder, IDX file prefix)


def read_idx(path, header_bytes):
    with gzip.open(path, "rb") as f:
        header = f.read(header_bytes)
        return struct.unpack(">" + "I" * (header_bytes // 4), header), f.read()


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def gray_png(pixels, width, height):
    """A PNG of 8-bit gray samples, row by row (each row with filter type 0, none)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # depth 8, gray, deflate, no interlace
    rows = b"".join(b"\x00" + pixels[y * width:(y + 1) * width] for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
            png_chunk(b"IDAT", zlib.compress(rows, 9)) + png_chunk(b"IEND", b""))


def write_atomic(path, data):
    folder, name = os.path.split(path)
    temp = os.path.join(folder, "." + name + ".tmp")
    with open(temp, "wb") as out:
        out.write(data)
    os.replace(temp, path)  # never a half-written file under the real name


def write_split(out_dir, folder, prefix, per_class):
    (_, count, rows, cols), pixels = read_idx(f"{SOURCE}/{prefix}-images-idx3-ubyte.gz", 16)
    _, labels = read_idx(f"{SOURCE}/{prefix}-labels-idx1-ubyte.gz", 8)
    split_dir = os.path.join(out_dir, folder)
    for name in CLASS_NAMES:
        os.makedirs(os.path.join(split_dir, name), exist_ok=True)
    size = rows * cols
    written = [0] * len(CLASS_NAMES)
    for k in range(count):
        label = labels[k]
        if per_class is not None and written[label] >= per_class:
            continue
        image = pixels[k * size:(k + 1) * size]
        write_atomic(os.path.join(split_dir, CLASS_NAMES[label], f"{k:05d}.png"), gray_png(image, cols, rows))
        written[label] += 1
    print(f"wrote {split_dir}: {sum(written)} images in {len(CLASS_NAMES)} class folders")


def main():
    parser = argparse.ArgumentParser(description="Writes Fashion-MNIST as PNG image folders (train/ and test/).")
    parser.add_argument("out_dir")
    parser.add_argument("--per-class", type=int, default=None, metavar="N",
                        help="the first N images of each class in each split (default: all)")
    args = parser.parse_args()
    if args.per_class is not None and args.per_class < 1:
        sys.exit("make_fmnist_images.py: --per-class must be at least 1")
    if not os.path.exists(f"{SOURCE}/train-images-idx3-ubyte.gz"):
        sys.exit(f"{SOURCE} is missing: install Debian's dataset-fashion-mnist (scripts/install-deps.sh does)")
    for folder, prefix in SPLITS:
        write_split(args.out_dir, folder, prefix, args.per_class)


if __name__ == "__main__":
    main()
