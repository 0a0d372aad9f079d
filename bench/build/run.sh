#!/usr/bin/env bash
# Build benchmark (not a test): through the real docker CLI's classic builder
# (DOCKER_BUILDKIT=0), on sample Dockerfiles, measures
#   1. cold build wall time (--no-cache),
#   2. fully cached rebuild wall time,
#   3. a multi-stage build with two independent 2-second stages (close to 2 s when they run
#      in parallel, about 4 s when one after the other),
# for wharfd and, with --install-docker, Debian's docker.io (own socket and data root), then
# prints the ratios. Run as root after `cargo build --release --workspace --bins`.
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib.sh wharf-bbench "$@"
export DOCKER_BUILDKIT=0

busybox_tar() {
  local r="$WORK/rootfs"; mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/proc" "$r/sys" "$r/dev"
  cp /bin/busybox "$r/bin/busybox"
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$r/bin/$a"; done
  echo 'root:x:0:0:root:/root:/bin/sh' > "$r/etc/passwd"; echo 'root:x:0:' > "$r/etc/group"
  tar -C "$r" -cf "$WORK/busybox.tar" .
}

samples() {
  local s="$WORK/sample"; mkdir -p "$s/src"
  for i in $(seq 50); do head -c 4096 /dev/urandom > "$s/src/f$i"; done
  cat > "$s/Dockerfile" <<'DF'
FROM busybox
ARG VERSION=1
ENV APP=/app
WORKDIR /app
COPY src/ ./src/
RUN find src -type f | wc -l > count && echo "$VERSION" > version
RUN echo 'app:x:1000:1000::/app:/bin/sh' >> /etc/passwd
USER app
LABEL org.example.version=$VERSION
EXPOSE 8080
CMD cat count version
DF
  local p="$WORK/parallel"; mkdir -p "$p"
  cat > "$p/Dockerfile" <<'DF'
FROM busybox AS a
RUN sleep 2 && echo a > /a
FROM busybox AS b
RUN sleep 2 && echo b > /b
FROM busybox
COPY --from=a /a /a
COPY --from=b /b /b
DF
}

ms() { echo $(( ($2 - $1) / 1000000 )); }

bench() { # name sock
  export DOCKER_HOST="unix://$2"
  "$DOCKER" import "$WORK/busybox.tar" busybox:latest >/dev/null
  "$DOCKER" build -q --no-cache "$WORK/sample" >/dev/null   # warm up
  local s e cold cached par
  s=$(date +%s%N); "$DOCKER" build -q --no-cache -t sample "$WORK/sample" >/dev/null; e=$(date +%s%N); cold=$(ms "$s" "$e")
  s=$(date +%s%N); "$DOCKER" build -q -t sample "$WORK/sample" >/dev/null; e=$(date +%s%N); cached=$(ms "$s" "$e")
  s=$(date +%s%N); "$DOCKER" build -q --no-cache --rm "$WORK/parallel" >/dev/null; e=$(date +%s%N); par=$(ms "$s" "$e")
  echo "$1 $cold $cached $par"
  unset DOCKER_HOST
}

busybox_tar
samples
mkdir -p "$WORK/wharf"
"$BIN/wharfd" -H "unix://$WORK/wharf/s.sock" --data-root "$WORK/wharf/data" --exec-root "$WORK/e" \
  --pidfile "$WORK/wharf/pid" --config-file /dev/null --cgroup-parent "$CGROUP_PARENT" --bridge "$BRIDGE" 2>"$WORK/wharf/log" &
PIDS+=($!)
for _ in $(seq 100); do [ -S "$WORK/wharf/s.sock" ] && break; sleep 0.05; done
read -r _ w_cold w_cached w_par < <(bench wharf "$WORK/wharf/s.sock")
printf 'wharfd:  cold %s ms | cached %s ms | two 2 s stages %s ms\n' "$w_cold" "$w_cached" "$w_par"

if [ "$INSTALL_DOCKER" = 1 ]; then
  command -v dockerd >/dev/null || apt-get install -y docker.io >/dev/null
  mkdir -p "$WORK/docker"
  dockerd -H "unix://$WORK/docker/s.sock" --data-root "$WORK/docker/data" --exec-root "$WORK/docker/exec" \
    --pidfile "$WORK/docker/pid" --bridge none --iptables=false --containerd-namespace "bbench$$" \
    2>"$WORK/docker/log" &
  PIDS+=($!)
  for _ in $(seq 200); do [ -S "$WORK/docker/s.sock" ] && "$DOCKER" -H "unix://$WORK/docker/s.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
  read -r _ d_cold d_cached d_par < <(bench docker "$WORK/docker/s.sock")
  printf 'dockerd: cold %s ms | cached %s ms | two 2 s stages %s ms\n' "$d_cold" "$d_cached" "$d_par"
  awk -v a="$d_cold" -v b="$w_cold" -v c="$d_cached" -v d="$w_cached" -v e="$d_par" -v f="$w_par" 'BEGIN {
    printf "ratios (docker/wharf): cold %.1fx | cached %.1fx | parallel stages %.1fx\n", a/b, c/d, e/f }'
fi
