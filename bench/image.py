#!/usr/bin/env python3
"""Image writing throughput (`hints image`), against GNU tar piped into sha256sum and against a
two-pass write-then-hash, on the same store paths from the page cache; and the cost of a
rebuild where 1 of 99 layers changed.

A synthetic store of 99 paths (each a directory of files, 2 GiB / 99 on average by default,
incompressible) is made under the work directory and read once to warm the page cache. Then,
each timed as the best of --repeat runs:
  - one core's bound for writing a blob: the files read from the page cache (`cat`), OpenSSL's
    SHA-256 rate in memory (`openssl speed`), and the same number of bytes written into a new
    file from memory; a blob's bytes must be read, hashed and written, so the sum of the three
    is what one core can do with reads that copy, as `read` does;
  - all the files' bytes through `openssl dgst -sha256` (OpenSSL's SHA-256, as `ocidir` uses it:
    this CPU's bound for reading and hashing on one core) and through coreutils' sha256sum;
  - `tar --sort=name -cf - nix | sha256sum` (one pass, two processes);
  - `tar --sort=name -cf layer.tar nix` then `sha256sum layer.tar` (two passes);
  - `hints image --compression none` with 1 thread and with all cores: 99 layers, each hashed
    while written (fresh output directory every run);
  - `hints image --describe`, what a Nix build runs (`imageFromHints`): every layer made and
    hashed but not written, which is what `tar | sha256sum` does;
  - the rebuild: the same image with one path replaced by a new one, into the directory that
    holds the first build (its layer cache answers for the other 98);
  - gzip and zstd blobs, for reference.

usage: bench/image.py [--work /tmp/hints-image-bench] [--mib 2048] [--repeat 3]
"""
import argparse, json, os, shutil, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_store(work, mib):
    root = os.path.join(work, "root")
    store = os.path.join(root, "nix", "store")
    if os.path.exists(os.path.join(work, "graph.json")):
        return root
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(store)
    per_path = mib * 2**20 // 99
    graph = []
    for k in range(100):  # the 100th is the rebuild's new path
        name = f"{k:032d}"[-32:].replace("0", "a") + f"-pkg{k}-1.0"
        d = os.path.join(store, name)
        os.makedirs(os.path.join(d, "lib"))
        left, i = per_path, 0
        while left > 0:
            n = min(left, 4 * 2**20)
            with open(os.path.join(d, "lib", f"f{i}"), "wb") as f:
                f.write(os.urandom(n))
            left, i = left - n, i + 1
        graph.append({"path": f"/nix/store/{name}", "narSize": per_path, "references": []})
    with open(os.path.join(work, "all.json"), "w") as f:
        json.dump(graph, f)
    with open(os.path.join(work, "graph.json"), "w") as f:
        json.dump(graph[:99], f)
    with open(os.path.join(work, "layers.json"), "w") as f:
        json.dump([[g["path"]] for g in graph[:99]], f)
    changed = graph[:98] + graph[99:]
    with open(os.path.join(work, "graph2.json"), "w") as f:
        json.dump(changed, f)
    with open(os.path.join(work, "layers2.json"), "w") as f:
        json.dump([[g["path"]] for g in changed], f)
    return root


def best(repeat, fn, setup=lambda: None):
    """The shortest of `repeat` timings of `fn`, each after an untimed `setup`."""
    times = []
    for _ in range(repeat):
        setup()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def sha256_in_memory():
    """OpenSSL's SHA-256 rate on one core, bytes per second, from memory (no I/O)."""
    out = subprocess.run("openssl speed -evp sha256 -bytes 131072 -seconds 3", shell=True, check=True,
                         capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1].split()[-1].rstrip("k")) * 1000


def write_new_file(path, total):
    """`total` bytes from one 16 MiB buffer into a new file: the page cache copy and the
    file system's allocation that writing a blob costs."""
    buf = os.urandom(16 << 20)
    if os.path.exists(path):
        os.remove(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    left = total
    while left > 0:
        left -= os.write(fd, buf[:min(left, len(buf))])
    os.close(fd)
    os.remove(path)


def sh(cmd, **kw):
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL, **kw)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/hints-image-bench")
    ap.add_argument("--mib", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--hints", default=os.path.join(ROOT, "target", "release", "hints"))
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    root = make_store(a.work, a.mib)
    w = a.work
    paths = [p["path"] for p in json.load(open(os.path.join(w, "graph.json")))]
    rel = " ".join("nix/store/" + os.path.basename(p) for p in paths)
    sh(f"cd {root} && cat {' '.join(os.path.join(root, p[1:], 'lib', '*') for p in paths)} > /dev/null")
    total = sum(os.path.getsize(os.path.join(dp, f)) for p in paths for dp, _, fs in os.walk(os.path.join(root, p[1:])) for f in fs)
    gib = total / 2**30

    def hints_image(threads, output, graph="graph.json", layers="layers.json", compression="none"):
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
        sh(f"{a.hints} -q image --graph {w}/{graph} --store-layers {w}/{layers} --store-root {root} "
           f"--compression {compression} {output}", env=env)

    def image(out, threads, graph="graph.json", layers="layers.json", compression="none"):
        hints_image(threads, f"--out oci:{out}", graph, layers, compression)

    def fresh(out):
        """An empty output directory, made before the timing starts."""
        return lambda: shutil.rmtree(out, ignore_errors=True)

    def describe(threads):
        hints_image(threads, f"--describe {w}/description.json")

    cores = os.cpu_count()
    # One core's bound for writing a blob: its bytes read, hashed and written, back to back.
    read_only = best(a.repeat, lambda: sh(f"cd {root} && find {rel} -type f | sort | xargs cat > /dev/null"))
    sha_only = total / sha256_in_memory()
    write_only = best(a.repeat, lambda: write_new_file(f"{w}/write-only.bin", total))
    write_bound = read_only + sha_only + write_only
    sha_bound = best(a.repeat, lambda: sh(f"cd {root} && find {rel} -type f | sort | xargs cat | openssl dgst -sha256"))
    cat_sha = best(a.repeat, lambda: sh(f"cd {root} && find {rel} -type f | sort | xargs cat | sha256sum"))
    tar_sha = best(a.repeat, lambda: sh(f"cd {root} && tar --sort=name -cf - {rel} | sha256sum"))
    two_pass = best(a.repeat, lambda: sh(f"cd {root} && tar --sort=name -cf {w}/two-pass.tar {rel} && sha256sum {w}/two-pass.tar"))
    one = best(a.repeat, lambda: image(f"{w}/oci", 1), fresh(f"{w}/oci"))
    full = best(a.repeat, lambda: image(f"{w}/oci", cores), fresh(f"{w}/oci"))
    hashed = best(a.repeat, lambda: describe(1))
    hashed_all = best(a.repeat, lambda: describe(cores))
    rows = [
        ("cat files > /dev/null (read from the page cache)", read_only),
        ("SHA-256 in memory (openssl speed, 128 KiB blocks)", sha_only),
        ("the same bytes written into a new file from memory", write_only),
        ("  the three back to back: one core's write bound", write_bound),
        ("cat files | openssl dgst -sha256 (SHA-256 bound)", sha_bound),
        ("cat files | sha256sum", cat_sha),
        ("tar --sort=name | sha256sum", tar_sha),
        ("tar --sort=name > file; sha256sum file (two passes)", two_pass),
        ("hints image, plain tar, 1 thread", one),
        (f"hints image, plain tar, {cores} threads", full),
        ("hints image --describe (not written), 1 thread", hashed),
        (f"hints image --describe, {cores} threads", hashed_all),
    ]
    fresh(f"{w}/oci-rebuild")()
    image(f"{w}/oci-rebuild", cores)
    rebuild = best(a.repeat, lambda: image(f"{w}/oci-rebuild", cores, "graph2.json", "layers2.json"))
    gz = best(1, lambda: image(f"{w}/oci-gz", cores, compression="gzip"), fresh(f"{w}/oci-gz"))
    zs = best(1, lambda: image(f"{w}/oci-zstd", cores, compression="zstd"), fresh(f"{w}/oci-zstd"))
    print(f"{total / 2**20:.0f} MiB in 99 store paths, from the page cache; best of {a.repeat}")
    print(f"{'':<52} {'seconds':>8} {'GiB/s':>7}")
    for name, s in rows:
        print(f"{name:<52} {s:>8.3f} {gib / s:>7.2f}")
    print(f"{f'hints image, gzip, {cores} threads':<52} {gz:>8.3f} {gib / gz:>7.2f}")
    print(f"{f'hints image, zstd, {cores} threads':<52} {zs:>8.3f} {gib / zs:>7.2f}")
    print(f"rebuild with 1 of 99 layers changed: {rebuild:.3f} s = {rebuild / full:.1%} of a full build ({full:.3f} s)")
    print(f"hints image, 1 thread: {total / one / 1e9:.2f} GB/s; {one / sha_bound:.2f}x the time of the SHA-256 bound, "
          f"{one / write_bound:.2f}x that of reading, hashing and writing back to back (at most {total / write_bound / 1e9:.2f} GB/s); "
          f"{tar_sha / one:.2f}x faster than tar | sha256sum, {two_pass / one:.2f}x faster than two passes")
    print(f"hints image --describe, 1 thread: {total / hashed / 1e9:.2f} GB/s (what `tar | sha256sum` does: every layer made and hashed, none written); "
          f"{tar_sha / hashed:.2f}x faster than tar | sha256sum")

if __name__ == "__main__":
    sys.exit(main())
