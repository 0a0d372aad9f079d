#!/usr/bin/env bash
# Builds Wharf, installs its binaries into /usr/local/bin, starts wharfd on /run/wharf.sock,
# makes a busybox base image from Debian's busybox-static (no registry needed) and runs a
# container with it.
set -euo pipefail
cd "$(dirname "$0")/.."
hack/deps.sh

cargo build --release --workspace --bins
bin=target/x86_64-unknown-linux-gnu/release
install -m 0755 "$bin"/wharfd "$bin"/wharf "$bin"/wharf-shim "$bin"/wharf-runtime "$bin"/wharf-init /usr/local/bin/

if ! wharf version >/dev/null 2>&1; then
  mkdir -p /var/log
  nohup wharfd >/var/log/wharfd.log 2>&1 &
  for _ in $(seq 50); do wharf version >/dev/null 2>&1 && break; sleep 0.1; done
fi

if ! wharf image inspect busybox:latest >/dev/null 2>&1; then
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  mkdir -p "$rootfs"/bin "$rootfs"/etc "$rootfs"/tmp "$rootfs"/root
  cp /bin/busybox "$rootfs"/bin/busybox
  for applet in $(/bin/busybox --list); do [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs"/etc/passwd
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs"/etc/group
  tar -C "$rootfs" -c . | wharf import --change 'CMD ["sh"]' - busybox:latest
fi

wharf run --rm busybox echo "hello from a Wharf container"
echo "wharfd is running (log: /var/log/wharfd.log). Try: DOCKER_HOST=unix:///run/wharf.sock docker ps"
