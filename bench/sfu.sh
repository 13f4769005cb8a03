#!/usr/bin/env bash
# SFU load: `meet serve` (release build) driven by WebRTC participants, sans-IO connections
# of the rtc core on one thread of the generator (bench/sfu_load.rs, bench/sfu_lite.rs). See
# bench/README.md.
#
#   bash bench/sfu.sh                 # 1x50:3, 1x50:all, 10x10:all, 3x50:all, 1x50:0 — 20 s each,
#                                     # on meet and on Janus, side by side
#   DURATION=10 SCENARIOS=1x50:3 ENGINES=rtc bash bench/sfu.sh
#   SOAK=30 bash bench/sfu.sh         # the soak instead: 10 meetings of 10 on WebRTC and one of
#                                     # 30 on the relay, joining, leaving, switching modes,
#                                     # muting and recording for 30 minutes, on rtc
#
# Knobs: DURATION (seconds measured per scenario, 20), SCENARIOS (comma-separated KxN:S:
# K meetings of N participants, S speakers each, `all` or a number), ENGINES (rtc,janus),
# SHARDS (meet's, 2, sharing one UDP port), SEPARATE_PORTS=1 (a port per shard), PIN=1 (server on CPU 1, generator on CPU 0), NO_BUILD=1,
# MEET_BIN, JSON_OUT=path; SOAK=minutes (its engine: the first of ENGINES, default rtc),
# SOAK_MEETINGS (10), SOAK_SIZE (10), SOAK_RELAY (30; 0: no relay meeting), SOAK_WARMUP
# (seconds, 60), SOAK_SETTLE (seconds the counts have to come back once everyone left, 60);
# FLOOR=0 skips the kernel's floor printed last.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
MEET_BIN=${MEET_BIN:-$TARGET_DIR/release/meet}
if [ "${NO_BUILD:-0}" != 1 ]; then
    cargo build --release --bin meet --example sfu-load --example udp-floor
fi
args=(--meet "$MEET_BIN" --duration "${DURATION:-20}"
    --scenarios "${SCENARIOS:-1x50:3,1x50:all,10x10:all,3x50:all,1x50:0}"
    --engines "${ENGINES:-$([ -n "${SOAK:-}" ] && echo rtc || echo rtc,janus)}"
    --shards "${SHARDS:-2}")
[ "${PIN:-0}" = 1 ] && args+=(--pin)
[ "${SEPARATE_PORTS:-0}" = 1 ] && args+=(--separate-ports)
[ -n "${JSON_OUT:-}" ] && args+=(--json "$JSON_OUT")
if [ -n "${SOAK:-}" ]; then
    args+=(--soak "$SOAK" --soak-meetings "${SOAK_MEETINGS:-10}" --soak-size "${SOAK_SIZE:-10}"
        --soak-relay "${SOAK_RELAY:-30}" --soak-warmup "${SOAK_WARMUP:-60}"
        --soak-settle "${SOAK_SETTLE:-60}")
fi
"$TARGET_DIR/release/examples/sfu-load" "${args[@]}"
# The kernel's own cost for what 1x50:all and 3x50:all make the server send, and for
# receiving it (bench/udp_floor.rs).
if [ -z "${SOAK:-}" ] && [ "${FLOOR:-1}" = 1 ]; then
    for meetings in 1 3; do
        "$TARGET_DIR/release/examples/udp-floor" --seconds 5 --meetings "$meetings"
    done
fi
