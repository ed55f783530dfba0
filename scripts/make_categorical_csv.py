#!/usr/bin/python3
"""Writes a table of mixed numeric and categorical columns from a planted model.

    python3 scripts/make_categorical_csv.py OUT_DIR [--train N] [--test N] [--seed S]

OUT_DIR gets train.csv (default 20,000 records) and test.csv (5,000), with the
header "age,income,city,device,product,label":

  age      a number, uniform in [18, 80)
  income   a number, log-normal around 40,000
  city     one of 40 city names (strings), drawn Zipf-like (a few are
           frequent, many rare); empty (missing) in 3% of the records
  device   "ios", "android" or "web"
  product  an integer code in [0, 5000), written as text: many values,
           meant for hash_buckets
  label    the class, 0, 1 or 2

The planted model: each class k has a score

  s_k = a_k * (age - 49) / 18 + b_k * (log(income) - log(40000))
        + city_k[city] + device_k[device] + product_k[product mod 50]

where every a_k, b_k and effect is drawn once from the seed (a missing city
has effect 0), and the label is the class with the largest s_k + noise
(Gumbel, scale 0.5). Most of the signal is in the city and the device, so a
model that reads only age and income does clearly worse than one that embeds
the categorical columns (examples/categorical-csv.pbtxt). The same seed
writes the same bytes. Only the standard library is used; nothing is
downloaded.
"""
import argparse
import math
import os
import random

CLASSES = 3
CITY_NAMES = [
    "Oslo", "Lima", "Quito", "Accra", "Hanoi", "Perth", "Cusco", "Turku", "Basel", "Dakar",
    "Sucre", "Malmo", "Cork", "Porto", "Riga", "Split", "Bergen", "Ghent", "Lyon", "Graz",
    "Kyoto", "Pune", "Cairo", "Tunis", "Fez", "Bari", "Brno", "Nice", "Bonn", "Delft",
    "Omaha", "Tulsa", "Reno", "Boise", "Salem", "Provo", "Akron", "Waco", "Yuma", "Nome",
]
DEVICES = ["ios", "android", "web"]
PRODUCTS = 5000


def planted_model(rng):
    """The class weights and the effect of every categorical value."""
    def effects(n, scale):
        return [[rng.gauss(0, scale) for _ in range(CLASSES)] for _ in range(n)]
    return {
        "age": [rng.gauss(0, 0.5) for _ in range(CLASSES)],
        "income": [rng.gauss(0, 0.5) for _ in range(CLASSES)],
        "city": effects(len(CITY_NAMES), 1.5),
        "device": effects(len(DEVICES), 1.0),
        "product": effects(50, 0.5),
    }


def city_weights():
    return [1.0 / (i + 1) for i in range(len(CITY_NAMES))]  # Zipf-like


def record(rng, model, weights):
    age = rng.uniform(18, 80)
    income = math.exp(rng.gauss(math.log(40000), 0.5))
    city = None if rng.random() < 0.03 else rng.choices(range(len(CITY_NAMES)), weights)[0]
    device = rng.randrange(len(DEVICES))
    product = rng.randrange(PRODUCTS)
    scores = []
    for k in range(CLASSES):
        s = model["age"][k] * (age - 49) / 18 + model["income"][k] * (math.log(income) - math.log(40000))
        s += 0 if city is None else model["city"][city][k]
        s += model["device"][device][k] + model["product"][product % 50][k]
        s += -0.5 * math.log(-math.log(rng.random() or 1e-12))  # Gumbel noise
        scores.append(s)
    label = max(range(CLASSES), key=lambda k: scores[k])
    city_text = "" if city is None else CITY_NAMES[city]
    return f"{age:.1f},{income:.0f},{city_text},{DEVICES[device]},{product},{label}\n"


def write(path, rng, model, count):
    weights = city_weights()
    temp = path + ".tmp"
    with open(temp, "w") as out:
        out.write("age,income,city,device,product,label\n")
        for _ in range(count):
            out.write(record(rng, model, weights))
    os.replace(temp, path)
    print(f"wrote {path}: {count} records")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--train", type=int, default=20000)
    parser.add_argument("--test", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    rng = random.Random(args.seed)
    model = planted_model(rng)
    write(os.path.join(args.out_dir, "train.csv"), rng, model, args.train)
    write(os.path.join(args.out_dir, "test.csv"), rng, model, args.test)


if __name__ == "__main__":
    main()
