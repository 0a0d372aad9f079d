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

command -v cargo-nextest >/dev/null 2>&1 || cargo install --locked cargo-nextest

# End-to-end tests exec sibling binaries (wharfd spawns wharf-shim, which runs wharf-runtime),
# so build every binary before any test runs.
cargo build --workspace --bins
status=0
# nextest does not run doc tests.
cargo test --workspace --doc || status=$?
# The shim's suite defaults to runc as the reference runtime; run it on ours too.
WHARF_TEST_RUNTIME="$PWD/target/x86_64-unknown-linux-gnu/debug/wharf-runtime" \
  cargo nextest run -p wharf-shim --no-fail-fast || status=$?
# nextest runs each test in its own process with a time limit (.config/nextest.toml).
cargo nextest run --workspace --no-fail-fast || status=$?
exit "$status"
