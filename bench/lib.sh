# The set-up bench/{engine,volumes,build}/run.sh share. Each sources it from the repository
# root with its name (the work dir's prefix and the daemons' cgroup parent) and its own
# arguments:   . bench/lib.sh wharf-bench "$@"
# It sets BIN, DOCKER, INSTALL_DOCKER (--install-docker), WORK, CGROUP_PARENT and BRIDGE (wharfd's
# default bridge, so a bench never touches a running wharfd's wharf0); on exit it stops the
# daemons the script put in PIDS and removes what they left: mounts under WORK, the cgroup
# parent, the bridge.
BIN=${WHARF_BIN:-target/x86_64-unknown-linux-gnu/release}
DOCKER=${DOCKER:-/usr/local/bin/docker}
INSTALL_DOCKER=0
[ "${2:-}" = "--install-docker" ] && INSTALL_DOCKER=1
WORK=$(mktemp -d "/tmp/$1.XXXXXX")
CGROUP_PARENT="$1-$$"
BRIDGE="wb$$"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 2
  grep " $WORK" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$WORK"
  ip link del "$BRIDGE" 2>/dev/null || true
  # The daemon leaves its (empty) cgroup parent behind, as dockerd does; it is ours to remove,
  # with any container cgroups an interrupted run left inside it.
  for d in /sys/fs/cgroup/*/"$CGROUP_PARENT" /sys/fs/cgroup/"$CGROUP_PARENT"; do
    [ -d "$d" ] || continue
    find "$d" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null || true
    rmdir "$d" 2>/dev/null || true
  done
}
trap cleanup EXIT
