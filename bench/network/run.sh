#!/usr/bin/env bash
# Benchmark: networking cost in wharfd and, with --install-docker, in Debian's dockerd (own
# socket, data root and bridge), with ratios from the same run:
#   1. `run --rm busybox true` on the default bridge minus the same with `--network none`
#   2. 20 containers started in parallel on one user-defined network (wall time)
#   3. TCP throughput host -> container through a port published on 127.0.0.1
#   4. DNS lookup latency of a container name through the embedded resolver (median)
# Traffic goes only to loopback and to the daemons' own bridges. Not a test; needs root.
# Run as root after `cargo build --release --workspace --bins`:
#   bench/network/run.sh [--install-docker]     # the latter also runs Debian's dockerd, for ratios
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib.sh wharf-nbench "$@"
N=${N:-30}
MB=${MB:-512}
export DOCKER_CONFIG="$WORK/docker-config"
mkdir -p "$DOCKER_CONFIG"
busybox_tar

bench() { # DOCKER_HOST set by the caller; each measurement also prints a "fig <value>" line
    local d="$DOCKER"
    "$d" import "$WORK/busybox.tar" netbench-busybox:latest >/dev/null
    python3 - "$N" "$d" <<'PY'
import statistics, subprocess, sys, time
n, d = int(sys.argv[1]), sys.argv[2]
def run(extra):
    t = time.perf_counter()
    subprocess.run([d, "run", "--rm", *extra, "netbench-busybox", "true"], check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - t) * 1000
# Bridge and none alternate, and the cost is the median of the pairs' differences: this
# host's speed drifts within a run, which a block of each then a subtraction would measure.
b, none = [], []
for _ in range(n):
    b.append(run([]))
    none.append(run(["--network", "none"]))
diff = [x - y for x, y in zip(b, none)]
bm, nm = statistics.median(b), statistics.median(none)
print(f"  run --rm true, bridge: median {bm:.1f} ms (mean {statistics.mean(b):.1f})")
print(f"  run --rm true, none:   median {nm:.1f} ms (mean {statistics.mean(none):.1f})")
print(f"  bridge set-up cost:    median {statistics.median(diff):.1f} ms of {n} alternated pairs")
print(f"fig {statistics.median(diff):.1f}")
PY
    "$d" network create netbench >/dev/null
    local t0 t1
    t0=$(date +%s%N)
    local runs=()
    for i in $(seq 20); do "$d" run -d --name "nb$i" --network netbench netbench-busybox sleep 600 >/dev/null & runs+=($!); done
    # Only the runs: a bare `wait` would also wait for the daemons this shell started.
    wait "${runs[@]}"
    t1=$(date +%s%N)
    echo "  20 parallel starts on one user network: $(( (t1 - t0) / 1000000 )) ms"
    echo "fig $(( (t1 - t0) / 1000000 ))"
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
print(f"fig {mb / dt:.0f}")
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
print(f"fig {statistics.median(rt) * 1e6:.0f}")
PY
    else
        echo "  DNS: sandbox key not reachable from here"; echo "fig 0"
    fi
    "$d" rm -f $("$d" ps -aq) >/dev/null
    "$d" network rm netbench >/dev/null
}

start_wharfd --bip 10.199.0.1/24 --default-address-pool base=10.199.16.0/20,size=24
echo "wharfd ($BIN):"
DOCKER_HOST="unix://$WSOCK" bench > "$WORK/wharf.out"; grep -v '^fig ' "$WORK/wharf.out"
if [ "$INSTALL_DOCKER" = 1 ]; then
  # dockerd takes a bridge that exists: $DBRIDGE, removed on exit by bench/lib.sh.
  ip link add "$DBRIDGE" type bridge && ip addr add 10.198.0.1/24 dev "$DBRIDGE" && ip link set "$DBRIDGE" up
  start_dockerd --bridge "$DBRIDGE" --default-address-pool base=10.198.16.0/20,size=24
  echo "dockerd $(dockerd --version | cut -d, -f1) (--iptables=false):"
  DOCKER_HOST="unix://$DSOCK" bench > "$WORK/docker.out"; grep -v '^fig ' "$WORK/docker.out"
  read -r wb wp wt wd < <(awk '/^fig / {printf "%s ", $2} END {print ""}' "$WORK/wharf.out")
  read -r db dp dt dd < <(awk '/^fig / {printf "%s ", $2} END {print ""}' "$WORK/docker.out")
  awk -v wb="$wb" -v db="$db" -v wp="$wp" -v dp="$dp" -v wt="$wt" -v dt="$dt" -v wd="$wd" -v dd="$dd" 'BEGIN {
    printf "ratios (docker/wharf): bridge set-up cost %.1fx | 20 parallel starts %.1fx | DNS lookup %.1fx | throughput (wharf/docker) %.2fx\n",
      (wb > 0 ? db / wb : 0), dp / wp, dd / wd, wt / dt }'
fi
