#!/usr/bin/env bash
# Runs Wharf's whole test suite: unit tests and the end-to-end tests that start real
# containers, shims and wharfd daemons (needs root, namespaces, cgroups and overlayfs).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "the test suite needs root (namespaces, mounts, cgroups): run it as root" >&2
  exit 1
fi
hack/deps.sh

# End-to-end tests exec sibling binaries (wharfd spawns wharf-shim, which runs wharf-runtime),
# so build every binary before any test runs.
cargo build --workspace --bins
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee target/test.log
status=${PIPESTATUS[0]}
set -e

# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "%d passed, %d failed, %d skipped\n", p, f, i }' target/test.log
exit "$status"
