"""Benchmark driver for bench/runtime/run.sh (see there)."""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time


def run(cmd):
    """Runs cmd under /usr/bin/time (a small forker, so the peak RSS is the runtime's, not a
    forked copy of this Python process), returns peak RSS in KiB, raises on failure. stderr
    goes to a file, not a pipe: the container inherits create's stdio and would hold a pipe."""
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as rss:
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name] + cmd,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        if p.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {err.read().decode()}")
        return int(rss.read().split()[-1])


def make_bundle(root, wharf):
    bundle = os.path.join(root, "bundle")
    rootfs = os.path.join(bundle, "rootfs")
    os.makedirs(os.path.join(rootfs, "bin"))
    for d in ["dev", "proc", "sys", "tmp", "etc"]:
        os.makedirs(os.path.join(rootfs, d))
    shutil.copy("/bin/busybox", os.path.join(rootfs, "bin/busybox"))
    for applet in ["sh", "true"]:
        os.symlink("busybox", os.path.join(rootfs, "bin", applet))
    subprocess.run([wharf, "spec", "--bundle", bundle], check=True)
    cfg_path = os.path.join(bundle, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["process"]["args"] = ["true"]
    cfg["process"]["terminal"] = False
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    return bundle


def one(rt, state, bundle, cid):
    """create + start + wait (poll state) + delete; returns (seconds, peak RSS KiB)."""
    base = [rt, "--root", state]
    t0 = time.perf_counter()
    rss = run(base + ["create", "--bundle", bundle, cid])
    rss = max(rss, run(base + ["start", cid]))
    while True:
        out = subprocess.run(base + ["state", cid], capture_output=True, check=True).stdout
        if json.loads(out)["status"] == "stopped":
            break
    rss = max(rss, run(base + ["delete", cid]))
    return time.perf_counter() - t0, rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--wharf", required=True)
    ap.add_argument("--runc", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as root:
        bundle = make_bundle(root, a.wharf)
        runtimes = {"wharf-runtime": a.wharf, "runc": a.runc}
        times = {k: [] for k in runtimes}
        peak = {k: 0 for k in runtimes}
        for i in range(a.n):
            for name, rt in runtimes.items():
                state = os.path.join(root, "state-" + name)
                secs, rss = one(rt, state, bundle, f"bench-{os.getpid()}-{i}")
                times[name].append(secs)
                peak[name] = max(peak[name], rss)
        med = {k: statistics.median(v) * 1000 for k, v in times.items()}
        for k in runtimes:
            print(f"{k:14s} median {med[k]:8.2f} ms   peak RSS {peak[k]:7d} KiB   ({a.n} runs)")
        print(f"ratio wharf-runtime/runc: {med['wharf-runtime'] / med['runc']:.2f} (goal <= 0.75)")
        print(f"peak RSS ratio:           {peak['wharf-runtime'] / peak['runc']:.2f} (goal <= 1.00)")


if __name__ == "__main__":
    main()
