#!/usr/bin/env bash
# create+start+wait+delete of a `true` container, N times, wharf-runtime against runc in the
# same run (alternating, so both see the same machine state). Prints medians, the ratio and
# the peak RSS of each runtime process. Not a test. Needs root.
#   N=200 WHARF=path/to/wharf-runtime RUNC=/usr/sbin/runc bench/runtime/run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
: "${N:=200}"
: "${RUNC:=/usr/sbin/runc}"
if [ -z "${WHARF:-}" ]; then
    (cd "$repo" && cargo build --release -p wharf-runtime >&2)
    for c in "$repo"/target/*/release/wharf-runtime "$repo"/target/release/wharf-runtime; do
        if [ -x "$c" ]; then WHARF=$c; break; fi
    done
fi
exec python3 "$here/bench.py" --n "$N" --wharf "$WHARF" --runc "$RUNC"
