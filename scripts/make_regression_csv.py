#!/usr/bin/python3
"""Writes a regression data set drawn from a planted model, for examples/planted-regression.pbtxt.

    python3 scripts/make_regression_csv.py OUT_DIR [--train N] [--test N] [--seed S]

OUT_DIR gets train.csv (default 50,000 rows) and test.csv (default 10,000
rows): a header "x1,...,x8,y", then one example a line. Each feature is
drawn independently from N(0, 1), and the target is

    y = 3 x1 - 2 x2 + x3 x4 + sin(2 x5) + 0.5 x6^2 + noise,   noise ~ N(0, 0.5^2)

(x7 and x8 are distractors). The signal's variance is the sum of
Var(3 x1) = 9, Var(2 x2) = 4,
Var(x3 x4) = 1, Var(sin(2 x5)) = (1 - e^-8) / 2 = 0.4998, Var(0.5 x6^2) = 0.5;
15.0 in all, the noise's 0.25. So the best any model can do on fresh data is
RMSE 0.5 and R^2 = 15.0 / 15.25 = 0.984; a linear model, which cannot fit
x3 x4 or x6^2 and only 0.07 of sin(2 x5)'s variance, reaches at most
R^2 = 13.07 / 15.25 = 0.857. The draw is seeded (Python's
random, Mersenne Twister), so the files are the same on every machine. Only
the standard library is used.
"""
import argparse
import math
import os
import random

FEATURES = 8
NOISE_STD = 0.5


def target(x, rng):
    signal = 3 * x[0] - 2 * x[1] + x[2] * x[3] + math.sin(2 * x[4]) + 0.5 * x[5] ** 2
    return signal + rng.gauss(0, NOISE_STD)


def write_csv(path, rows, rng):
    temp = path + ".tmp"
    with open(temp, "w") as out:
        out.write(",".join(f"x{i + 1}" for i in range(FEATURES)) + ",y\n")
        for _ in range(rows):
            x = [rng.gauss(0, 1) for _ in range(FEATURES)]
            y = target(x, rng)
            out.write(",".join(f"{v:.6g}" for v in x) + f",{y:.6g}\n")
    os.replace(temp, path)  # never a half-written file under the real name
    print(f"wrote {path}: {rows} rows")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--train", type=int, default=50000)
    parser.add_argument("--test", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    rng = random.Random(args.seed)
    write_csv(os.path.join(args.out_dir, "train.csv"), args.train, rng)
    write_csv(os.path.join(args.out_dir, "test.csv"), args.test, rng)


if __name__ == "__main__":
    main()
