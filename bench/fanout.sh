#!/usr/bin/env bash
# Socket.IO audio fan-out: `meet serve` (release build) against the reference Node relay in
# bench/peers/, same load in the same run. See bench/README.md.
#
#   bash bench/fanout.sh                      # 1 meeting × 50, then 10 meetings × 10, 20 s each
#   DURATION=10 SCENARIOS=1x50 bash bench/fanout.sh
#   FRAME_SAMPLES=16384 SCENARIOS=1x3,1x3:silent bash bench/fanout.sh   # a socket that never reads
#
# Knobs: DURATION (seconds per run, 20), SCENARIOS ("1x50,10x10"; `KxN:silent` adds a socket
# that never reads to every meeting), FRAME_SAMPLES (960 Float32 samples a frame), NO_BUILD=1,
# MEET_BIN, JSON_OUT=path.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
MEET_BIN=${MEET_BIN:-$TARGET_DIR/release/meet}

command -v node >/dev/null || { echo "fanout.sh needs Node.js (apt-get install nodejs npm)" >&2; exit 2; }
if [ "${NO_BUILD:-0}" != 1 ]; then
    cargo build --release --bin meet
fi
if [ ! -d bench/peers/node_modules/socket.io ]; then
    (cd bench/peers && npm ci --no-audit --no-fund)
fi
args=(--meet "$MEET_BIN" --duration "${DURATION:-20}" --scenarios "${SCENARIOS:-1x50,10x10}"
    --frame-samples "${FRAME_SAMPLES:-960}")
[ -n "${JSON_OUT:-}" ] && args+=(--json "$JSON_OUT")
exec node bench/fanout.mjs "${args[@]}"
