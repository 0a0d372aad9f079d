#!/usr/bin/env bash
# Engine benchmark (not a test): through the real docker CLI, measures
#   1. median latency of `docker run --rm --network none busybox true` (20 runs),
#   2. wall time to start 20 containers in parallel,
#   3. idle daemon RSS, and RSS growth per running container (daemon + shims),
# for wharfd and, with --install-docker, Debian's docker.io (own socket and data root), then
# prints the ratios. Run as root after `cargo build --release --workspace --bins`.
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib.sh wharf-bench "$@"

rss_kb() { awk '/VmRSS/ {r = $2} END {print r + 0}' "/proc/$1/status" 2>/dev/null || echo 0; }
# RSS of a process plus its shims (processes whose command line matches $2: only this
# run's, so shims of other daemons on the machine do not count).
tree_rss_kb() { local t; t=$(rss_kb "$1"); for p in $(pgrep -f "$2" || true); do t=$((t + $(rss_kb "$p"))); done; echo "$t"; }


bench() { # name sock daemon_pid shim_pattern
  local name=$1 sock=$2 dpid=$3 shim=$4
  export DOCKER_HOST="unix://$sock"
  "$DOCKER" import "$WORK/busybox.tar" busybox:latest >/dev/null
  "$DOCKER" run --rm --network none busybox true >/dev/null   # warm up
  local times=()
  for _ in $(seq 20); do
    local s e; s=$(date +%s%N); "$DOCKER" run --rm --network none busybox true; e=$(date +%s%N)
    times+=($(( (e - s) / 1000000 )))
  done
  local median; median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 10p)
  # Shims of the removed --rm containers may still be on their way out: wait, so that only
  # the running containers' shims are counted below.
  for _ in $(seq 300); do pgrep -f "$shim" >/dev/null || break; sleep 0.1; done
  local idle; idle=$(rss_kb "$dpid")
  local s e; s=$(date +%s%N)
  for i in $(seq 20); do "$DOCKER" run -d --network none --name "b$i" busybox sleep 600 >/dev/null & done; wait
  e=$(date +%s%N)
  local par=$(( (e - s) / 1000000 ))
  local busy; busy=$(tree_rss_kb "$dpid" "$shim")
  local per=$(( (busy - idle) / 20 ))
  "$DOCKER" rm -f $(seq -f 'b%g' 20) >/dev/null
  echo "$name $median $par $idle $per"
  unset DOCKER_HOST
}

busybox_tar
start_wharfd
read -r _ w_med w_par w_idle w_per < <(bench wharf "$WSOCK" "$WPID" "wharf-shim $WORK/e/")
printf 'wharfd:  run --rm median %s ms | 20 parallel %s ms | idle RSS %s KiB | per container %s KiB\n' "$w_med" "$w_par" "$w_idle" "$w_per"

if [ "$INSTALL_DOCKER" = 1 ]; then
  start_dockerd --bridge none
  read -r _ d_med d_par d_idle d_per < <(bench docker "$DSOCK" "$DPID" "containerd-shim.*$WORK/docker/")
  d_idle=$((d_idle + $(tree_rss_kb 0 "containerd --config" 2>/dev/null || echo 0)))
  printf 'dockerd: run --rm median %s ms | 20 parallel %s ms | idle RSS %s KiB | per container %s KiB\n' "$d_med" "$d_par" "$d_idle" "$d_per"
  awk -v a="$d_med" -v b="$w_med" -v c="$d_par" -v d="$w_par" -v e="$d_idle" -v f="$w_idle" -v g="$d_per" -v h="$w_per" 'BEGIN {
    printf "ratios (docker/wharf): run --rm %.1fx | parallel %.1fx | idle RSS %.1fx | per container %.1fx\n", a/b, c/d, e/f, (h>0 ? g/h : 0) }'
fi
