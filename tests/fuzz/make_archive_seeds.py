#!/usr/bin/env python3
"""make_archive_seeds.py - seed corpus for tests/fuzz/fuzz_archive.c: archive targets as
`[pacman] type = "archive"` gets them, good ones (tar, tar.gz, tar.xz, zip with files,
directories, relative symlinks, hardlinks) and the hostile kinds the installer must refuse
(.. and absolute paths, symlinks out of the tree, entries below a symlink, device nodes,
FIFOs, setuid bits). Writes corpus/archive/*; the outputs are committed, re-run only to
change them: python3 tests/fuzz/make_archive_seeds.py
"""
import io
import os
import tarfile
import zipfile

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "archive")


def tar(name, entries, mode="w"):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.PAX_FORMAT) as t:
        for e in entries:
            kind, path = e[0], e[1]
            ti = tarfile.TarInfo(path)
            ti.mtime = 1767225600
            data = None
            if kind == "f":
                data = e[2]
                ti.size = len(data)
                ti.mode = e[3] if len(e) > 3 else 0o644
            elif kind == "d":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            elif kind == "l":
                ti.type, ti.linkname = tarfile.SYMTYPE, e[2]
            elif kind == "h":
                ti.type, ti.linkname = tarfile.LNKTYPE, e[2]
            elif kind == "c":
                ti.type, ti.devmajor, ti.devminor = tarfile.CHRTYPE, 1, 3
            elif kind == "p":
                ti.type = tarfile.FIFOTYPE
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(buf.getvalue())


def zip_(name, entries):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path, data in entries:
            z.writestr(path, data)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(buf.getvalue())


os.makedirs(OUT, exist_ok=True)
good = [("d", "app"), ("f", "app/run.sh", b"#!/bin/sh\necho hi\n", 0o755),
        ("f", "app/data.bin", bytes(range(256))), ("l", "app/latest", "data.bin"),
        ("h", "app/copy.bin", "app/data.bin")]
tar("good.tar", good)
tar("good.tar.gz", good, "w:gz")
tar("good.tar.xz", good, "w:xz")
zip_("good.zip", [("app/", b""), ("app/a.txt", b"a" * 100), ("b.txt", b"b")])
tar("dotdot.tar", [("f", "../escape", b"x")])
tar("absolute.tar", [("f", "/tmp/otad-fuzz-absolute", b"x")])
tar("symlink-out.tar", [("l", "out", "../../outside"), ("f", "out/keep2", b"x")])
tar("symlink-abs.tar", [("l", "etc", "/etc")])
tar("dotdot-symlink.tar", [("d", "app"), ("l", "up", "app/../app")])
tar("below-symlink.tar", [("d", "d"), ("l", "s", "d"), ("f", "s/f", b"x")])
tar("hardlink-out.tar", [("h", "pw", "../outside/keep")])
tar("device.tar", [("c", "null")])
tar("fifo.tar", [("p", "fifo")])
tar("setuid.tar", [("f", "suid", b"x", 0o4755)])
zip_("zip-dotdot.zip", [("../zip-escape", b"x"), ("ok", b"y")])
with open(os.path.join(OUT, "not-an-archive"), "wb") as f:
    f.write(b"just some bytes\n")
