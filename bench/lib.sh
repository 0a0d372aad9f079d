# The set-up every bench/<area>/run.sh shares. Each sources it from the repository
# root with its name (the work dir's prefix and the daemons' cgroup parent) and its own
# arguments:   . bench/lib.sh wharf-bench "$@"
# It sets BIN, DOCKER, INSTALL_DOCKER (--install-docker), WORK, CGROUP_PARENT and BRIDGE (wharfd's
# default bridge, so a bench never touches a running wharfd's wharf0); on exit it stops the
# daemons the script put in PIDS and removes what they left: mounts under WORK, the cgroup
# parent, the bridge. The functions below import busybox and start the two daemons.
BIN=${WHARF_BIN:-target/x86_64-unknown-linux-gnu/release}
DOCKER=${DOCKER:-/usr/local/bin/docker}
INSTALL_DOCKER=0
[ "${2:-}" = "--install-docker" ] && INSTALL_DOCKER=1
WORK=$(mktemp -d "/tmp/$1.XXXXXX")
CGROUP_PARENT="$1-$$"
BRIDGE="wb$$"
# A bridge for dockerd, where a bench gives it one (it cannot make its own under another name).
DBRIDGE="db$$"
PIDS=()
IP_FORWARD=$(cat /proc/sys/net/ipv4/ip_forward)
cleanup() {
  # Containers of an interrupted run would outlive their daemon.
  for s in "${WSOCK:-}" "${DSOCK:-}"; do
    [ -S "$s" ] || continue
    "$DOCKER" -H "unix://$s" ps -aq 2>/dev/null | xargs -r "$DOCKER" -H "unix://$s" rm -f >/dev/null 2>&1 || true
    "$DOCKER" -H "unix://$s" network prune -f >/dev/null 2>&1 || true
  done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
  grep " $WORK" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$WORK"
  ip link del "$BRIDGE" 2>/dev/null || true
  # wharfd's nftables table for that bridge, and the forwarding switch it turned on.
  nft delete table inet "wharf-$BRIDGE" 2>/dev/null || true
  sysctl -qw net.ipv4.ip_forward="$IP_FORWARD" 2>/dev/null || true
  ip link del "$DBRIDGE" 2>/dev/null || true
  # The daemon leaves its (empty) cgroup parent behind, as dockerd does; it is ours to remove,
  # with any container cgroups an interrupted run left inside it.
  for d in /sys/fs/cgroup/*/"$CGROUP_PARENT" /sys/fs/cgroup/"$CGROUP_PARENT"; do
    [ -d "$d" ] || continue
    find "$d" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null || true
    rmdir "$d" 2>/dev/null || true
  done
}
trap cleanup EXIT

# $WORK/busybox.tar: a root filesystem of Debian's static busybox, for `docker import`.
busybox_tar() {
  local r="$WORK/rootfs"; mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/proc" "$r/sys" "$r/dev"
  cp /bin/busybox "$r/bin/busybox"
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$r/bin/$a"; done
  echo 'root:x:0:0:root:/root:/bin/sh' > "$r/etc/passwd"; echo 'root:x:0:' > "$r/etc/group"
  tar -C "$r" -cf "$WORK/busybox.tar" .
}

# Starts wharfd on $WORK/wharf/s.sock with its own roots, cgroup parent and bridge, plus the
# given flags; sets WSOCK and WPID.
start_wharfd() {
  mkdir -p "$WORK/wharf"
  WSOCK="$WORK/wharf/s.sock"
  "$BIN/wharfd" -H "unix://$WSOCK" --data-root "$WORK/wharf/data" --exec-root "$WORK/e" \
    --pidfile "$WORK/wharf/pid" --config-file /dev/null --cgroup-parent "$CGROUP_PARENT" \
    --bridge "$BRIDGE" "$@" 2>"$WORK/wharf/log" &
  WPID=$!; PIDS+=("$WPID")
  for _ in $(seq 100); do [ -S "$WSOCK" ] && return; sleep 0.05; done
  echo "wharfd did not start: $(tail -3 "$WORK/wharf/log")" >&2; exit 1
}

# Starts Debian's dockerd (installed on first use, its service never started) on
# $WORK/docker/s.sock with its own roots and containerd namespace, without iptables rules
# (nothing is left on the host), plus the given flags; sets DSOCK and DPID.
start_dockerd() {
  if ! command -v dockerd >/dev/null; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
    rm -f /usr/sbin/policy-rc.d
  fi
  mkdir -p "$WORK/docker"
  DSOCK="$WORK/docker/s.sock"
  dockerd -H "unix://$DSOCK" --data-root "$WORK/docker/data" --exec-root "$WORK/docker/exec" \
    --pidfile "$WORK/docker/pid" --iptables=false --containerd-namespace "$CGROUP_PARENT" \
    "$@" 2>"$WORK/docker/log" &
  DPID=$!; PIDS+=("$DPID")
  for _ in $(seq 300); do
    [ -S "$DSOCK" ] && "$DOCKER" -H "unix://$DSOCK" version >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "dockerd did not start: $(tail -3 "$WORK/docker/log")" >&2; exit 1
}
