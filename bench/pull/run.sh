#!/usr/bin/env bash
# Registry benchmark (not a test): through the real docker CLI and Debian's docker-registry on
# loopback, measures for wharfd and, with --install-docker, Debian's docker.io (own socket
# and data root) in the same run:
#   1. push of a 5-layer image (half random, half compressible bytes per layer) to an empty
#      registry,
#   2. cold pull of that image (nothing local),
#   3. re-pull with every layer present,
# then prints the ratios. Both daemons pull the same blobs (the ones wharfd pushed); each
# pushes to a registry of its own. PULL_MB sets the image size (default 300); WHARF_BIN the
# binaries (default release: run after `cargo build --release --workspace --bins`).
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib.sh wharf-pbench "$@"
MB=${PULL_MB:-300}
LAYER=$((MB * 1000000 / 5 / 2))

ms() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Starts an empty docker-registry; sets REG to its host:port.
start_registry() { # name
  local dir="$WORK/$1" port; port=$(free_port); mkdir -p "$dir"
  printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
    "$dir/storage" "$port" > "$dir/config.yml"
  docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { REG="127.0.0.1:$port"; return; }
    sleep 0.1
  done
  echo "registry did not start" >&2; exit 1
}

# The image, built on wharfd: busybox plus 5 layers of $LAYER random and $LAYER compressible bytes.
make_image() { # tag
  local parent=busybox
  for i in 1 2 3 4 5; do
    "$DOCKER" run --name "mk$i" --network none "$parent" sh -c \
      "head -c $LAYER /dev/urandom > /r$i && (yes 'wharf bench compressible line $i' 2>/dev/null | head -c $LAYER > /c$i)"
    "$DOCKER" commit "mk$i" "bench/layer:$i" >/dev/null
    "$DOCKER" rm "mk$i" >/dev/null
    parent="bench/layer:$i"
  done
  "$DOCKER" tag "$parent" "$1"
}

# Removes every image, so the next pull is cold.
clear_images() {
  "$DOCKER" images --format '{{.Repository}}:{{.Tag}}' | xargs -r "$DOCKER" rmi >/dev/null
  [ -z "$("$DOCKER" images -q)" ] || { echo "images left after removal" >&2; exit 1; }
}

bench() { # name sock push-registry pull-ref
  local name=$1 sock=$2 reg=$3 ref=$4
  export DOCKER_HOST="unix://$sock"
  "$DOCKER" tag bench/pull:1 "$reg/bench/pull:1"
  local push cold repull
  push=$(ms "$DOCKER" push "$reg/bench/pull:1")
  clear_images
  cold=$(ms "$DOCKER" pull "$ref")
  repull=$(ms "$DOCKER" pull "$ref")
  [ "$("$DOCKER" run --rm --network none "$ref" sh -c 'wc -c < /c5')" = "$LAYER" ] ||
    { echo "pulled image incomplete on $name" >&2; exit 1; }
  echo "$name $push $cold $repull"
  unset DOCKER_HOST
}

busybox_tar
start_wharfd
export DOCKER_HOST="unix://$WSOCK"
"$DOCKER" import "$WORK/busybox.tar" busybox:latest >/dev/null
make_image bench/pull:1
"$DOCKER" save -o "$WORK/image.tar" bench/pull:1 busybox:latest
unset DOCKER_HOST
start_registry reg-wharf; WREG=$REG
read -r _ w_push w_cold w_repull < <(bench wharf "$WSOCK" "$WREG" "$WREG/bench/pull:1")
printf 'wharfd:  %s MB in 5 layers | push to an empty registry %s ms | cold pull %s ms | re-pull %s ms\n' \
  "$MB" "$w_push" "$w_cold" "$w_repull"

if [ "$INSTALL_DOCKER" = 1 ]; then
  start_dockerd --bridge none
  DOCKER_HOST="unix://$DSOCK" "$DOCKER" load -q -i "$WORK/image.tar" >/dev/null
  start_registry reg-docker; DREG=$REG
  read -r _ d_push d_cold d_repull < <(bench docker "$DSOCK" "$DREG" "$WREG/bench/pull:1")
  printf 'dockerd: %s MB in 5 layers | push to an empty registry %s ms | cold pull %s ms | re-pull %s ms\n' \
    "$MB" "$d_push" "$d_cold" "$d_repull"
  awk -v a="$d_push" -v b="$w_push" -v c="$d_cold" -v d="$w_cold" -v e="$d_repull" -v f="$w_repull" 'BEGIN {
    printf "ratios (docker/wharf): push %.1fx | cold pull %.1fx | re-pull %.1fx\n", a/b, c/d, e/f }'
fi
