#!/usr/bin/env bash
# What `meet top` costs: the server's CPU over 15 s of 10 meetings of 10 (3 speakers each)
# without, then with one `meet top` attached (in tmux), and meet top's own CPU in that window.
#
#   bash bench/top.sh            # NO_BUILD=1 to skip the release build
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[ "${NO_BUILD:-0}" = 1 ] || cargo build --release --bin meet --example sfu-load
command -v tmux >/dev/null || { echo "bench/top.sh needs tmux" >&2; exit 1; }
SCENARIOS=10x10:3 NO_BUILD=1 DURATION=60 bash bench/sfu.sh >/dev/null 2>&1 &
bench=$!
trap 'kill $bench 2>/dev/null || true; tmux kill-session -t meet-top-bench 2>/dev/null || true' EXIT
pid=
for _ in $(seq 240); do
    pid=$(pgrep -f "$TARGET_DIR/release/meet serve" | head -1 || true)
    [ -n "$pid" ] && break
    sleep 0.5
done
[ -n "$pid" ] || { echo "the bench server did not start" >&2; exit 1; }
cfg=$(tr '\0' '\n' <"/proc/$pid/cmdline" | sed -n '/^--config$/{n;p}')
sleep 25 # the meetings are set up and talking
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
pct() { python3 -c "print(f'{($2 - $1) / $hz / 15 * 100:.2f}')"; }
a=$(ticks "$pid"); sleep 15; b=$(ticks "$pid")
without=$(pct "$a" "$b")
tmux new-session -d -s meet-top-bench -x 120 -y 40 "$TARGET_DIR/release/meet top --config $cfg"
sleep 3
tpid=$(pgrep -f "$TARGET_DIR/release/meet top" | head -1)
a=$(ticks "$pid"); ta=$(ticks "$tpid"); sleep 15; b=$(ticks "$pid"); tb=$(ticks "$tpid")
printf '%-40s %8s\n' "10x10:3, 15 s each" "% core"
printf '%-40s %8s\n' "server, no meet top" "$without"
printf '%-40s %8s\n' "server, one meet top attached" "$(pct "$a" "$b")"
printf '%-40s %8s\n' "meet top itself" "$(pct "$ta" "$tb")"
