#!/usr/bin/env bash
# Volumes benchmark (not a test): through the real docker CLI, measures
#   1. the overhead of a named volume on `docker run --rm`: 30 alternating pairs of
#      `run --rm --network none [-v vol:/data] busybox true`, median of the differences,
#   2. first use of a new volume over an image directory of 10,000 small files (copy-up):
#      median of 5 `run --rm -v freshN:/data manyfiles true`, each with a new volume, the
#      two daemons alternating,
# for wharfd and, with --install-docker, Debian's docker.io (own socket and data root), then
# prints the ratios. Run as root after `cargo build --release --workspace --bins`.
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib.sh wharf-vbench "$@"

# busybox.tar, and manyfiles.tar: busybox plus /data with 10,000 small files.
make_tars() {
  busybox_tar
  local r="$WORK/rootfs"
  mkdir -p "$r/data"
  for d in $(seq 100); do
    mkdir "$r/data/d$d"
    for f in $(seq 100); do echo "file $d/$f" > "$r/data/d$d/f$f"; done
  done
  tar -C "$r" -cf "$WORK/manyfiles.tar" .
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ms() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }

# Images and a warmed-up volume on the daemon at $1.
setup() {
  export DOCKER_HOST="unix://$1"
  "$DOCKER" import "$WORK/busybox.tar" busybox:latest >/dev/null
  "$DOCKER" import --change 'VOLUME /data' "$WORK/manyfiles.tar" manyfiles:latest >/dev/null
  "$DOCKER" volume create vol >/dev/null
  "$DOCKER" run --rm --network none -v vol:/data busybox true >/dev/null   # warm up
  unset DOCKER_HOST
}

overhead() { # sock -> "plain vol overhead"
  export DOCKER_HOST="unix://$1"
  # Alternating pairs: machine noise hits both halves of a pair alike, so the median of the
  # per-pair differences is the overhead.
  local pairs
  pairs=$(for _ in $(seq 30); do
    echo "$(ms "$DOCKER" run --rm --network none busybox true) $(ms "$DOCKER" run --rm --network none -v vol:/data busybox true)"
  done)
  echo "$(awk '{print $1}' <<<"$pairs" | median) $(awk '{print $2}' <<<"$pairs" | median) $(awk '{print $2 - $1}' <<<"$pairs" | median)"
  unset DOCKER_HOST
}

first_use() { # sock n -> ms of a run over the new volume freshN
  DOCKER_HOST="unix://$1" ms "$DOCKER" run --rm --network none -v "fresh$2:/data" manyfiles true
}

copied_all() { # sock name
  [ "$(DOCKER_HOST="unix://$1" "$DOCKER" run --rm -v fresh1:/data busybox sh -c 'ls /data/d100 | wc -l')" = 100 ] ||
    { echo "copy-up incomplete on $2" >&2; exit 1; }
}

make_tars
start_wharfd
setup "$WSOCK"
read -r w_plain w_vol w_over < <(overhead "$WSOCK")
printf 'wharfd:  run --rm %s ms | with -v vol:/data %s ms (overhead, median of pairs, %s ms)\n' \
  "$w_plain" "$w_vol" "$w_over"
if [ "$INSTALL_DOCKER" = 1 ]; then
  start_dockerd --bridge none
  setup "$DSOCK"
  read -r d_plain d_vol d_over < <(overhead "$DSOCK")
  printf 'dockerd: run --rm %s ms | with -v vol:/data %s ms (overhead, median of pairs, %s ms)\n' \
    "$d_plain" "$d_vol" "$d_over"
fi

# Copy-up is disk work, and this disk's speed drifts by several times over minutes: flush
# what the set-up wrote, then alternate the daemons so both see the same disk.
sync
w_runs="" d_runs=""
for i in $(seq 5); do
  w_runs+="$(first_use "$WSOCK" "$i") "
  if [ "$INSTALL_DOCKER" = 1 ]; then d_runs+="$(first_use "$DSOCK" "$i") "; fi
done
copied_all "$WSOCK" wharfd
w_first=$(tr ' ' '\n' <<<"$w_runs" | grep . | median)
echo "first use over 10k files (median of 5): wharfd $w_first ms [$w_runs]"
if [ "$INSTALL_DOCKER" = 1 ]; then
  copied_all "$DSOCK" dockerd
  d_first=$(tr ' ' '\n' <<<"$d_runs" | grep . | median)
  echo "first use over 10k files (median of 5): dockerd $d_first ms [$d_runs]"
  awk -v a="$d_first" -v b="$w_first" -v c="$d_vol" -v d="$w_vol" 'BEGIN {
    printf "ratios (docker/wharf): run --rm -v %.1fx | first use over 10k files %.1fx\n", c/d, a/b }'
fi
