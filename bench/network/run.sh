#!/usr/bin/env bash
# Benchmark: networking cost in wharfd (and in dockerd, when Debian's docker.io runs at
# $DOCKERD_HOST, default unix:///run/docker.sock, for ratios in the same run).
#   1. `run --rm busybox true` on the default bridge minus the same with `--network none`
#   2. 20 containers started in parallel on one user-defined network (wall time)
#   3. TCP throughput host -> container through a port published on 127.0.0.1
#   4. DNS lookup latency of a container name through the embedded resolver (median)
# Traffic goes only to loopback and to the daemon's own bridge. Not a test; needs root.
#
#   bench/network/run.sh                 # release build, private wharfd, cleans up
#   BIN=target/x86_64-unknown-linux-gnu/debug N=20 bench/network/run.sh
set -euo pipefail

N=${N:-30}
MB=${MB:-512}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DOCKER=${DOCKER:-/usr/local/bin/docker}
cd "$ROOT"
if [ -z "${BIN:-}" ]; then
    cargo build --release -p wharf -p wharfd -p wharf-shim -p wharf-runtime -p wharf-init >&2
    TD=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    BIN=$(dirname "$(ls "$TD"/release/wharfd "$TD"/*/release/wharfd 2>/dev/null | head -1)")
fi
BIN=$(cd "$BIN" && pwd)

WORK=$(mktemp -d /tmp/wharf-net-bench.XXXXXX)
SOCK="$WORK/wharfd.sock"
BR="wbench$$"; BR=${BR:0:15}
"$BIN/wharfd" -H "unix://$SOCK" --data-root "$WORK/data" --exec-root "$WORK/exec" \
    --pidfile "$WORK/wharfd.pid" --helpers-dir "$BIN" --bridge "$BR" \
    --bip 10.199.0.1/24 --default-address-pool base=10.199.16.0/20,size=24 \
    >"$WORK/wharfd.log" 2>&1 &
DPID=$!
cleanup() {
    DOCKER_HOST="unix://$SOCK" "$DOCKER" ps -aq 2>/dev/null | xargs -r env DOCKER_HOST="unix://$SOCK" "$DOCKER" rm -f >/dev/null 2>&1 || true
    DOCKER_HOST="unix://$SOCK" "$DOCKER" network prune -f >/dev/null 2>&1 || true
    kill "$DPID" 2>/dev/null || true
    wait "$DPID" 2>/dev/null || true
    ip link del "$BR" 2>/dev/null || true
    umount -R -l "$WORK" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
export DOCKER_CONFIG="$WORK/docker-config"
mkdir -p "$DOCKER_CONFIG"

RFS="$WORK/rootfs"; mkdir -p "$RFS/bin"; cp /bin/busybox "$RFS/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$RFS/bin/$a"; done
tar -C "$RFS" -cf "$WORK/busybox.tar" .

bench() { # $1 = label, DOCKER_HOST set by the caller
    local d="$DOCKER"
    "$d" import "$WORK/busybox.tar" netbench-busybox:latest >/dev/null
    python3 - "$N" "$d" <<'PY'
import statistics, subprocess, sys, time
n, d = int(sys.argv[1]), sys.argv[2]
def runs(extra):
    w = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run([d, "run", "--rm", *extra, "netbench-busybox", "true"], check=True, stdout=subprocess.DEVNULL)
        w.append((time.perf_counter() - t) * 1000)
    return statistics.median(w), statistics.mean(w)
bm, bavg = runs([])
nm, navg = runs(["--network", "none"])
print(f"  run --rm true, bridge: median {bm:.1f} ms (mean {bavg:.1f})")
print(f"  run --rm true, none:   median {nm:.1f} ms (mean {navg:.1f})")
print(f"  bridge set-up cost:    median {bm - nm:.1f} ms (mean {bavg - navg:.1f})")
PY
    "$d" network create netbench >/dev/null
    local t0 t1
    t0=$(date +%s%N)
    for i in $(seq 20); do "$d" run -d --name "nb$i" --network netbench netbench-busybox sleep 600 >/dev/null & done
    wait
    t1=$(date +%s%N)
    echo "  20 parallel starts on one user network: $(( (t1 - t0) / 1000000 )) ms"
    # Throughput: a sink in the container, MB megabytes sent from the host to 127.0.0.1:port.
    "$d" run -d --name nbsink -p 127.0.0.1::9000 netbench-busybox sh -c 'while true; do nc -l -p 9000 >/dev/null; done' >/dev/null
    local port; port=$("$d" port nbsink 9000 | head -1 | sed 's/.*://')
    python3 - "$port" "$MB" <<'PY'
import socket, sys, time
port, mb = int(sys.argv[1]), int(sys.argv[2])
for _ in range(50):
    try:
        s = socket.create_connection(("127.0.0.1", port)); break
    except OSError: time.sleep(0.1)
buf = b"x" * (1 << 20)
t = time.perf_counter()
for _ in range(mb): s.sendall(buf)
s.shutdown(socket.SHUT_WR); s.recv(1); s.close()
dt = time.perf_counter() - t
print(f"  TCP host->container via 127.0.0.1:{port}: {mb / dt:.0f} MB/s")
PY
    # DNS: 1000 A queries for nb1 from nb2's namespace to 127.0.0.11, median round trip.
    local key; key=$("$d" inspect -f '{{.NetworkSettings.SandboxKey}}' nb2)
    if [ -n "$key" ] && [ -e "$key" ]; then
        nsenter --net="$key" python3 - <<'PY'
import socket, statistics, struct, time
q = struct.pack(">HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"\x03nb1\x00" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
rt = []
for i in range(1000):
    t = time.perf_counter(); s.sendto(q, ("127.0.0.11", 53)); s.recv(512); rt.append(time.perf_counter() - t)
print(f"  DNS lookup of a container name: median {statistics.median(rt) * 1e6:.0f} us")
PY
    else
        echo "  DNS: sandbox key not reachable from here"
    fi
    "$d" rm -f $("$d" ps -aq) >/dev/null
    "$d" network rm netbench >/dev/null
}

echo "wharfd ($BIN):"
DOCKER_HOST="unix://$SOCK" bench wharfd
DH=${DOCKERD_HOST:-unix:///run/docker.sock}
if DOCKER_HOST="$DH" "$DOCKER" version >/dev/null 2>&1 && [ -z "${SKIP_DOCKERD:-}" ]; then
    echo "dockerd ($DH):"
    DOCKER_HOST="$DH" bench dockerd
else
    echo "dockerd: not running at $DH (install Debian's docker.io and start it for ratios)"
fi
