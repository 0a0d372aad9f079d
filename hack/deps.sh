#!/usr/bin/env bash
# Installs the system packages Wharf's build, tests and demo use (Debian, as root).
# Idempotent: only calls apt-get when something is missing.
set -euo pipefail

need=()
[ -x /bin/busybox ] && /bin/busybox --list >/dev/null 2>&1 || need+=(busybox-static)
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
command -v umoci >/dev/null 2>&1 || need+=(umoci)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
[ -x /usr/bin/time ] || need+=(time)
command -v tar >/dev/null 2>&1 || need+=(tar)
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || need+=(libc6-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v docker >/dev/null 2>&1 || need+=(docker-cli)
# The registry e2e tests start their own instances on loopback ports; the package's service must not run.
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
# nft lists Wharf's table in the firewall tests; wharfd itself speaks netlink.
command -v nft >/dev/null 2>&1 || need+=(nftables)
# docker-compose 1.29 is one of the clients the e2e suite drives wharfd with.
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
# Builds from a Git context (remote=<git url>) clone with git.
command -v git >/dev/null 2>&1 || need+=(git)

if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # docker-cli is not in every Debian release; fall back to docker.io's client without starting its daemon.
  if [[ " ${need[*]} " == *" docker-cli "* ]] && ! apt-cache show docker-cli >/dev/null 2>&1; then
    need=("${need[@]/docker-cli/docker.io}")
  fi
  # Neither docker.io's daemon nor docker-registry's service may start on install.
  if [[ " ${need[*]} " == *" docker.io "* || " ${need[*]} " == *" docker-registry "* ]]; then
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
      trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
  fi
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Where systemd runs, keep the packaged registry service off (tests bring their own).
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled docker-registry >/dev/null 2>&1; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi

# docker-py, the Python SDK: one of the clients the e2e suite drives wharfd with.
command -v python3 >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq python3 python3-pip >/dev/null; }
python3 -c 'import docker' 2>/dev/null || python3 -m pip install -q docker 2>/dev/null \
  || python3 -m pip install -q --break-system-packages docker

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install a current Rust toolchain (rustup, Rust >= 1.85) first" >&2
  exit 1
fi
