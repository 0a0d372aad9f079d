#!/usr/bin/env bash
# Image load/save benchmark: Wharf vs Docker on the same 5-layer ~300 MB image.
# Usage: bench/images/run.sh [--install-docker] [--driver overlay2|vfs] [--mb-per-layer N] [--no-settle]
# Not a test: prints timings and ratios. Needs root (layer files keep their owners).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
driver=overlay2
mb=60
install_docker=0
while [ $# -gt 0 ]; do
    case "$1" in
        --install-docker) install_docker=1 ;;
        --driver) driver="$2"; shift ;;
        --mb-per-layer) mb="$2"; shift ;;
        --no-settle) do_settle=0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

work="$(mktemp -d /var/tmp/wharf-bench-images.XXXXXX)"
dockerd_pid=""
cleanup() {
    if [ -n "$dockerd_pid" ]; then kill "$dockerd_pid" 2>/dev/null || true; wait "$dockerd_pid" 2>/dev/null || true; fi
    # Layers may still be mounted if a step failed.
    grep -F "$work" /proc/self/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

if [ "$install_docker" = 1 ] && ! command -v dockerd >/dev/null; then
    apt-get install -y docker.io
fi

# ext4 without a journal (this machine's root) skips free inodes deleted in the last 60 s
# (recently_deleted(), 300 s while their table block is dirty) and rescans them for every new
# inode, so whichever engine runs right after a mass deletion (the previous run's cleanup,
# another job's rm -rf) pays several times over for the same extraction. Settle before each
# measured run so both engines start from the same state. --no-settle skips the wait.
do_settle=1
settle() {
    sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    if [ "$do_settle" = 1 ]; then sleep 61; sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; fi
}

echo "== building the image ($((mb * 5)) MB of Debian files in 5 layers)"
python3 "$here/mkimage.py" "$work/image.tar" "$mb" >/dev/null
size_mb=$(( $(stat -c %s "$work/image.tar") / 1048576 ))
echo "image.tar: ${size_mb} MB"

echo "== wharf ($driver)"
# The target triple/dir may be configured: ask cargo where the binary is.
bench_bin=$(cd "$repo" && cargo build --release -q -p wharf-image --example bench --message-format=json |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "bench" and m.get("executable"):
        print(m["executable"])')
settle
"$bench_bin" "$work/wharf" "$driver" "$work/image.tar" "$work/wharf-save.tar" | tee "$work/wharf.out"
w_load=$(sed -n 's/^load_s=//p' "$work/wharf.out")
w_save=$(sed -n 's/^save_s=//p' "$work/wharf.out")

if command -v dockerd >/dev/null; then
    echo "== docker ($(dockerd --version))"
    sock="$work/docker.sock"
    dockerd --data-root "$work/docker" --exec-root "$work/docker-exec" --pidfile "$work/docker.pid" \
        -H "unix://$sock" --storage-driver "$driver" --bridge none --iptables=false >"$work/dockerd.log" 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 100); do [ -S "$sock" ] && docker -H "unix://$sock" info >/dev/null 2>&1 && break; sleep 0.2; done
    settle
    t0=$(date +%s.%N); docker -H "unix://$sock" load -i "$work/image.tar" >/dev/null; t1=$(date +%s.%N)
    docker -H "unix://$sock" save -o "$work/docker-save.tar" wharf-bench:latest; sync; t2=$(date +%s.%N)
    d_load=$(echo "$t1 - $t0" | bc -l); d_save=$(echo "$t2 - $t1" | bc -l)
    printf 'docker load_s=%.3f save_s=%.3f\n' "$d_load" "$d_save"
    printf 'ratio load (docker/wharf)=%.2fx  save=%.2fx\n' "$(echo "$d_load / $w_load" | bc -l)" "$(echo "$d_save / $w_save" | bc -l)"
else
    echo "== docker: not installed (run with --install-docker to compare)"
fi
