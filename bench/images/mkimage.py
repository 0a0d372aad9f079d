#!/usr/bin/env python3
"""Builds a 5-layer docker-save archive (~300 MB) from this machine's Debian files, in the
layout Docker 25+ writes (layers and config under blobs/sha256/, manifest.json last).

Independent of Wharf's code so the benchmark input is not produced by the code under test.
Usage: mkimage.py OUT.tar [MB_PER_LAYER]
"""
import hashlib, io, json, os, sys, tarfile

SOURCES = ["/usr/share", "/usr/lib/x86_64-linux-gnu", "/usr/bin", "/usr/lib/gcc", "/usr/lib/python3.11"]


def layer(src, budget, path):
    """Tar of files under src (sorted walk) until `budget` bytes of content; returns sha256."""
    used = 0
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
        for root, dirs, files in os.walk(src):
            dirs.sort()
            for name in [root] + [os.path.join(root, f) for f in sorted(files)]:
                try:
                    st = os.lstat(name)
                except OSError:
                    continue
                info = t.gettarinfo(name, arcname=name.lstrip("/"))
                if info is None:
                    continue
                if info.isreg():
                    if used + st.st_size > budget:
                        continue
                    try:
                        with open(name, "rb") as f:
                            t.addfile(info, f)
                    except OSError:
                        continue
                    used += st.st_size
                elif info.isdir() or info.issym():
                    t.addfile(info)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def main():
    out = sys.argv[1]
    budget = int(sys.argv[2] if len(sys.argv) > 2 else 60) << 20
    work = out + ".d"
    os.makedirs(work, exist_ok=True)
    diff_ids, paths = [], []
    for i, src in enumerate(SOURCES):
        p = os.path.join(work, f"layer{i}.tar")
        diff_ids.append(layer(src, budget, p))
        paths.append(p)
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"COPY {s}"} for s in SOURCES],
    }).encode()
    cid = hashlib.sha256(config).hexdigest()
    manifest = [{"Config": f"blobs/sha256/{cid}", "RepoTags": ["wharf-bench:latest"],
                 "Layers": [f"blobs/sha256/{d[7:]}" for d in diff_ids]}]
    with tarfile.open(out, "w") as t:
        for d, p in zip(diff_ids, paths):
            t.add(p, arcname=f"blobs/sha256/{d[7:]}")
        for name, data in [(f"blobs/sha256/{cid}", config), ("manifest.json", json.dumps(manifest).encode()),
                           ("repositories", json.dumps({"wharf-bench": {"latest": diff_ids[-1][7:]}}).encode())]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    for p in paths:
        os.remove(p)
    os.rmdir(work)
    print(f"sha256:{cid}")


if __name__ == "__main__":
    main()
