#!/usr/bin/env python3
"""Writes the seed corpus of the layer_tar fuzz target (fuzz/corpus/layer_tar/): small layer
tars as `hints image` and GNU tar write them, with what the reader must handle: `nix/` and
`nix/store/` entries, an executable, a symlink, a hard link, an empty directory, a reference to
another path inside a file, and a single-file store path."""
import io, os, tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
A = "/nix/store/0c8vhkd0xjaz0ib9cb7r8i6fb3dn0c1q-libfoo-1.0"[len("/nix/store/"):]
B = "/nix/store/1q7sd4wskl3f8vlrafmgyyf7rmbyhs5q-app-2.1"[len("/nix/store/"):]


def add(tar, name, kind=tarfile.REGTYPE, data=b"", mode=0o444, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.uid, info.gid = kind, mode, 1, 0, 0
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def write(name, entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for e in entries:
            add(tar, *e)
    # The entries and the end-of-archive marker, without tarfile's padding to 10 KiB.
    data = buf.getvalue().rstrip(b"\0")
    data += b"\0" * (-len(data) % 512 + 1024)
    with open(os.path.join(HERE, "corpus", "layer_tar", name), "wb") as f:
        f.write(data)


D = tarfile.DIRTYPE
write("two-paths.tar", [
    ("nix", D, b"", 0o555), ("nix/store", D, b"", 0o555),
    (f"nix/store/{A}", D, b"", 0o555), (f"nix/store/{A}/lib", D, b"", 0o555),
    (f"nix/store/{A}/lib/libfoo.so", tarfile.REGTYPE, b"\x7fELF libfoo", 0o555),
    (f"nix/store/{A}/lib/libfoo.so.1", tarfile.SYMTYPE, b"", 0o777, "libfoo.so"),
    (f"nix/store/{A}/share", D, b"", 0o555),
    (f"nix/store/{B}", D, b"", 0o555), (f"nix/store/{B}/bin", D, b"", 0o555),
    (f"nix/store/{B}/bin/app", tarfile.REGTYPE, f"#!/bin/sh\nexec /nix/store/{A}/lib/libfoo.so\n".encode(), 0o555),
    (f"nix/store/{B}/bin/app-again", tarfile.LNKTYPE, b"", 0o555, f"nix/store/{B}/bin/app"),
])
write("single-file.tar", [("nix", D, b"", 0o555), ("nix/store", D, b"", 0o555), (f"nix/store/{A}", tarfile.REGTYPE, b"hello\n")])
