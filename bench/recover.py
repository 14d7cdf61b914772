#!/usr/bin/env python3
"""Recovering a closure from an image's layers (`hints image closure --from-layers`): NAR
hashing and reference scanning throughput, against the physical bound of reading the same bytes
(`cat blobs > /dev/null`), with 1 thread and with every core.

A synthetic store of --paths store paths (--mib in all; incompressible bytes, and in every path
a text file naming a few other paths, so references are real) is written as an image with one
plain-tar layer per path (`hints image --compression none`), its blobs read once to warm the
page cache, then each timing is the best of --repeat runs.

It also prints the peak memory of any run against the largest layer: `--paths 1 --mib 1024`
gives one layer of one 1 GiB file.

Then the reference scan alone (`hints-bench refscan`: Nix's scan for 32-digit windows, no
hashing), over the synthetic store's files and over each --tree given (e.g. /usr/lib: real
binaries and text, where digits are far more common than in random bytes), against `cat` of the
same files.

usage: bench/recover.py [--work /tmp/hints-recover-bench] [--paths 5000] [--mib 2048] [--repeat 3] [--tree DIR]...
"""
import argparse, json, os, random, resource, shutil, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"


def make(work, paths, mib, hints):
    if os.path.exists(os.path.join(work, "oci", "index.json")):
        return
    shutil.rmtree(work, ignore_errors=True)
    rng = random.Random(5)
    names = [("".join(rng.choice(ALPHABET) for _ in range(32)), f"pkg{k}-1.0") for k in range(paths)]
    per = mib * 2**20 // paths
    graph = []
    for k, (h, n) in enumerate(names):
        d = os.path.join(work, "root", "nix", "store", f"{h}-{n}")
        os.makedirs(d)
        with open(os.path.join(d, "blob"), "wb") as f:
            f.write(os.urandom(per))
        refs = sorted({rng.randrange(k + 1) for _ in range(3)}) if k else []
        with open(os.path.join(d, "refs"), "w") as f:
            f.write("\n".join(f"/nix/store/{names[r][0]}-{names[r][1]}" for r in refs))
        graph.append({"path": f"/nix/store/{h}-{n}", "narSize": per, "references": [f"/nix/store/{names[r][0]}-{names[r][1]}" for r in refs]})
    with open(os.path.join(work, "g.json"), "w") as f:
        json.dump(graph, f)
    with open(os.path.join(work, "l.json"), "w") as f:
        json.dump([[g["path"]] for g in graph], f)
    subprocess.run([hints, "-q", "image", "--graph", "g.json", "--store-layers", "l.json", "--store-root", "root",
                    "--compression", "none", "--out", "oci:oci:bench"], cwd=work, check=True)


def best(repeat, fn):
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/hints-recover-bench")
    ap.add_argument("--paths", type=int, default=5000)
    ap.add_argument("--mib", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--hints", default=os.path.join(ROOT, "target", "release", "hints"))
    ap.add_argument("--bench", default=os.path.join(ROOT, "target", "release", "hints-bench"))
    ap.add_argument("--tree", action="append", default=[], help="another tree to time the reference scan on")
    a = ap.parse_args()
    make(a.work, a.paths, a.mib, a.hints)
    blobs = os.path.join(a.work, "oci", "blobs", "sha256")
    total = sum(os.path.getsize(os.path.join(blobs, f)) for f in os.listdir(blobs))
    command = [a.hints, "image", "closure", "oci:oci:bench", "--from-layers"]
    rows = against_cat(a, blobs, "cat blobs", "hints image closure --from-layers", command, cwd=a.work)
    out = subprocess.run(command, cwd=a.work, check=True, capture_output=True, text=True).stdout
    expected = {g["path"]: sorted(g["references"]) for g in json.load(open(os.path.join(a.work, "g.json")))}
    got = {r["path"]: r["references"] for r in json.loads(out)}
    print(f"{total / 2**20:.0f} MiB of layers, {a.paths} store paths; best of {a.repeat}; references recovered "
          f"{'exactly' if got == expected else 'WRONGLY'}")
    print_rows(rows, total)
    largest = max(os.path.getsize(os.path.join(blobs, f)) for f in os.listdir(blobs))
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak memory of any run: {peak:.0f} MB (the largest layer: {largest / 2**20:.0f} MiB)")
    for tree in [os.path.join(a.work, "root", "nix", "store")] + a.tree:
        reference_scan(tree, a)


def reference_scan(tree, a):
    """The reference scan alone over the files under `tree`, against `cat` of the same files."""
    files = (os.path.join(d, f) for d, _, fs in os.walk(tree) for f in fs)
    total = sum(os.path.getsize(f) for f in files if os.path.isfile(f) and not os.path.islink(f))
    rows = against_cat(a, tree, "cat files", "hints-bench refscan", [a.bench, "refscan", tree])
    print(f"\nreference scan alone, {tree}: {total / 2**20:.0f} MiB of files; best of {a.repeat} (process time, start included)")
    print_rows(rows, total)


def against_cat(a, tree, bound, label, command, cwd=None):
    """`cat` of every file under `tree` (the read bound, 1 core), then `command` on 1 thread and
    on every core: (name, best seconds) rows."""
    cat = lambda: subprocess.run(f"find {tree} -type f -print0 | xargs -0 cat > /dev/null", shell=True, check=True)
    cat()
    rows = [(f"{bound} > /dev/null (the read bound, 1 core)", best(a.repeat, cat))]
    for threads in (1, os.cpu_count()):
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
        run = lambda: subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
        rows.append((f"{label}, {threads} thread(s)", best(a.repeat, run)))
    return rows


def print_rows(rows, total):
    """The rows of `against_cat` as MB/s of `total` bytes, and the share of the read bound."""
    print(f"{'':<56} {'seconds':>8} {'MB/s':>8}")
    for name, s in rows:
        print(f"{name:<56} {s:>8.3f} {total / s / 1e6:>8.0f}")
    one, many = rows[1][1], rows[2][1]
    print(f"1 thread: {rows[0][1] / one:.0%} of the read bound; {os.cpu_count()} threads: {one / many:.2f}x one thread")


if __name__ == "__main__":
    sys.exit(main())
