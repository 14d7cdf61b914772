#!/usr/bin/env python3
"""What hysteresis costs and saves when the hint file is regenerated after every revision.

For each revision k in FIRST+1..LAST, the image is built with the hint file learned from
revisions 0..k-1 (regenerated from the previous file each time). A client holding revision k-1
(built with the file of its time) pulls revision k: every layer it does not hold. So a regroup
costs its re-download exactly when it happens. Two runs: `hints emit` with --min-gain 0.02
(hysteresis), and with --min-gain -1 (always take the new grouping).

usage: bench/hysteresis.py DATASET_DB [--first 6] [--last 12] [--max-layers 100]"""
import argparse, json, os, subprocess, tempfile

ap = argparse.ArgumentParser()
ap.add_argument("db")
ap.add_argument("--first", type=int, default=6)
ap.add_argument("--last", type=int, default=12)
ap.add_argument("--max-layers", type=int, default=100)
ap.add_argument("--hints", default="target/release/hints")
ap.add_argument("--dataset", default="../shared/data/dev-history")
a = ap.parse_args()
H = a.hints

def run(*args):
    return subprocess.run([H, *args], check=True, capture_output=True, text=True).stdout

ls = json.loads(run("ls", "--json", "--db", a.db))
revs = [r["label"] for r in ls["revisions"]]
graphs = {}
tmp = tempfile.mkdtemp()

def graph(image, k):
    """The stored closure of image at revision k, as a graph file (via `hints layer` input)."""
    key = (image, k)
    if key not in graphs:
        # Rebuild the closure file from the dataset directory next to the database's source.
        graphs[key] = os.path.join(a.dataset, "graphs", image, f"{k}.json")
    return graphs[key]

def layers(image, k, hint_file):
    out = run("layer", "--graph", graph(image, k), "--hints", hint_file, "--max-layers", str(a.max_layers))
    return [frozenset(l) for l in json.loads(out)]

def sizes_of(image, k):
    return {n["path"]: n["narSize"] for n in json.load(open(graph(image, k)))}

for mode, gain in [("hysteresis (--min-gain 0.02)", "0.02"), ("always regroup (--min-gain -1)", "-1")]:
    files, reports = {}, []
    prev = None
    for k in range(a.first, a.last):
        f = os.path.join(tmp, f"{gain}-{k}.yaml")
        args = ["emit", "--db", a.db, "--range", f"0..{k}", "--max-layers", str(a.max_layers), "--out", f, "--min-gain", gain]
        if prev:
            args += ["--previous", prev]
        reports.append(run(*args))
        files[k] = prev = f
    total = regroups = 0
    for k in range(a.first + 1, a.last + 1):
        for image in ls["images"]:
            old_file = files.get(k - 2, files[a.first])
            held = set(layers(image, k - 1, old_file))
            size = sizes_of(image, k)
            total += sum(sum(size[p] for p in l) for l in layers(image, k, files[k - 1]) if l not in held)
    regroups = sum(any(l.startswith("regrouped") for l in r.splitlines()) for r in reports[1:])
    print(f"{mode}: update bytes over revisions {a.first}..{a.last}: {total / 2**30:.3f} GiB, regroups {regroups} of {len(reports) - 1}")
    for r in reports[1:]:
        print("   ", " | ".join(l for l in r.splitlines() if l.startswith(("expected", "kept", "regrouped"))))
