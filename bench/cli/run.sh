#!/usr/bin/env bash
# Benchmark: `wharf` vs the docker CLI against ONE wharfd, for `version` and `ps` with 200
# containers. Reports mean wall time and max RSS over N runs. Not a test; needs root.
#
#   bench/cli/run.sh            # builds release binaries, starts a private wharfd, cleans up
#   N=50 CONTAINERS=200 bench/cli/run.sh
set -euo pipefail

N=${N:-30}
CONTAINERS=${CONTAINERS:-200}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DOCKER=${DOCKER:-/usr/local/bin/docker}

cd "$ROOT"
cargo build --release -p wharf -p wharfd -p wharf-shim -p wharf-runtime -p wharf-init >&2
TD=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
BIN=$(dirname "$(ls "$TD"/release/wharfd "$TD"/*/release/wharfd 2>/dev/null | head -1)")
WHARF="$BIN/wharf"

WORK=$(mktemp -d /tmp/wharf-cli-bench.XXXXXX)
SOCK="$WORK/wharfd.sock"
"$BIN/wharfd" -H "unix://$SOCK" --data-root "$WORK/data" --exec-root "$WORK/exec" \
    --pidfile "$WORK/wharfd.pid" --helpers-dir "$BIN" >"$WORK/wharfd.log" 2>&1 &
DPID=$!
cleanup() {
    "$WHARF" -H "unix://$SOCK" ps -aq 2>/dev/null | xargs -r "$WHARF" -H "unix://$SOCK" rm -f >/dev/null 2>&1 || true
    kill "$DPID" 2>/dev/null || true
    wait "$DPID" 2>/dev/null || true
    umount -R -l "$WORK" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
export DOCKER_HOST="unix://$SOCK" DOCKER_CONFIG="$WORK/docker-config"
mkdir -p "$DOCKER_CONFIG"

# A busybox image imported from a host rootfs, then CONTAINERS created (not started) containers.
RFS="$WORK/rootfs"; mkdir -p "$RFS/bin"; cp /bin/busybox "$RFS/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$RFS/bin/$a"; done
tar -C "$RFS" -cf "$WORK/busybox.tar" .
"$WHARF" -H "unix://$SOCK" import "$WORK/busybox.tar" bench-busybox:latest >/dev/null
for i in $(seq "$CONTAINERS"); do
    "$WHARF" -H "unix://$SOCK" create --name "bench-$i" bench-busybox true >/dev/null
done

# measure CMD...: mean/median wall time over N runs (fork+exec from python), and max RSS over N
# runs under GNU time (a python child's own pages would otherwise count towards its RSS).
measure() {
    python3 - "$N" "$@" <<'PY'
import os, subprocess, sys, tempfile, time
n = int(sys.argv[1]); cmd = sys.argv[2:]
walls = []
for _ in range(n):
    t = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL)
    walls.append(time.perf_counter() - t)
    if r.returncode != 0:
        sys.exit(f"{cmd} failed")
rss = 0
with tempfile.NamedTemporaryFile() as f:
    for _ in range(n):
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", f.name] + cmd, stdout=subprocess.DEVNULL, check=True)
        rss = max(rss, int(open(f.name).read().split()[-1]))
walls.sort()
print(f"{sum(walls)/n*1000:8.1f} ms (median {walls[n//2]*1000:.1f})  max RSS {rss} kB")
PY
}

printf '%-28s %s\n' "wharf version" "$(measure "$WHARF" version)"
printf '%-28s %s\n' "docker version" "$(measure "$DOCKER" version)"
printf '%-28s %s\n' "wharf ps -a ($CONTAINERS)" "$(measure "$WHARF" ps -a)"
printf '%-28s %s\n' "docker ps -a ($CONTAINERS)" "$(measure "$DOCKER" ps -a)"
