#!/usr/bin/env bash
# Build benchmark (not a test): through the real docker CLI's classic builder
# (DOCKER_BUILDKIT=0), on sample Dockerfiles, measures
#   1. cold build wall time (--no-cache, median of 5),
#   2. fully cached rebuild wall time (median of 5),
#   3. a multi-stage build with two independent 2-second stages, against the same build with
#      one of them (equal when the stages run in parallel, 2 s more when one after the other),
# for wharfd and, with --install-docker, Debian's docker.io (own socket and data root), then
# prints the ratios. Run as root after `cargo build --release --workspace --bins`.
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib.sh wharf-bbench "$@"
export DOCKER_BUILDKIT=0


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
  local o="$WORK/one"; mkdir -p "$o"
  cat > "$o/Dockerfile" <<'DF'
FROM busybox AS a
RUN sleep 2 && echo a > /a
FROM busybox
COPY --from=a /a /a
DF
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Wall time of one `docker build -q` in ms; the CLI's stderr (its legacy-builder banner) is
# shown only when the build fails.
build_ms() {
  local s e
  s=$(date +%s%N)
  "$DOCKER" build -q "$@" >/dev/null 2>"$WORK/build.err" || { cat "$WORK/build.err" >&2; exit 1; }
  e=$(date +%s%N)
  echo $(( (e - s) / 1000000 ))
}

bench() { # name sock
  export DOCKER_HOST="unix://$2"
  "$DOCKER" import "$WORK/busybox.tar" busybox:latest >/dev/null
  build_ms --no-cache "$WORK/sample" >/dev/null   # warm up
  local cold cached par one
  cold=$(for _ in $(seq 5); do build_ms --no-cache -t sample "$WORK/sample"; done | median)
  cached=$(for _ in $(seq 5); do build_ms -t sample "$WORK/sample"; done | median)
  par=$(build_ms --no-cache --rm "$WORK/parallel")
  one=$(build_ms --no-cache --rm "$WORK/one")
  echo "$1 $cold $cached $par $one"
  unset DOCKER_HOST
}

busybox_tar
samples
start_wharfd
read -r _ w_cold w_cached w_par w_one < <(bench wharf "$WSOCK")
printf 'wharfd:  cold %s ms | cached %s ms | two 2 s stages %s ms (one stage %s ms)\n' "$w_cold" "$w_cached" "$w_par" "$w_one"

if [ "$INSTALL_DOCKER" = 1 ]; then
  start_dockerd --bridge none
  read -r _ d_cold d_cached d_par d_one < <(bench docker "$DSOCK")
  printf 'dockerd: cold %s ms | cached %s ms | two 2 s stages %s ms (one stage %s ms)\n' "$d_cold" "$d_cached" "$d_par" "$d_one"
  awk -v a="$d_cold" -v b="$w_cold" -v c="$d_cached" -v d="$w_cached" -v e="$d_par" -v f="$w_par" 'BEGIN {
    printf "ratios (docker/wharf): cold %.1fx | cached %.1fx | parallel stages %.1fx\n", a/b, c/d, e/f }'
fi
