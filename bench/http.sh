#!/usr/bin/env bash
# HTTP load harness: `meet serve` (release build) against a bare warp hello-world measured in the
# same run, with wrk at fixed concurrency. See bench/README.md.
#
#   bash bench/http.sh
#
# Knobs (environment):
#   DURATION=10s           length of each measured wrk run
#   CONNECTIONS=64         concurrent connections for hello-world, reads and joins
#   LOGIN_CONNECTIONS=8    concurrent connections for the login run (argon2 is slow on purpose)
#   THREADS=2              wrk threads (capped at the connection count)
#   WARMUP=1s              unmeasured wrk run before each scenario; 0 skips it
#   SCENARIOS="hello reads joins login"   which runs, in this order
#   NO_BUILD=1             skip `cargo build` (use what is in target/release)
#   MEET_BIN, HELLO_BIN    binaries to run instead of target/release/{meet,examples/hello}
#   JSON_OUT=path          also write the results as JSON
#   STRICT=1               exit 1 when a target is missed
#   KEEP=1                 keep the scratch directory (server logs, raw wrk output)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JSON_OUT=${JSON_OUT:-}
case $JSON_OUT in "" | /*) ;; *) JSON_OUT="$PWD/$JSON_OUT" ;; esac
cd "$ROOT"

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
LOGIN_CONNECTIONS=${LOGIN_CONNECTIONS:-8}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-1s}
SCENARIOS=${SCENARIOS:-hello reads joins login}
NO_BUILD=${NO_BUILD:-0}
KEEP=${KEEP:-0}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
MEET_BIN=${MEET_BIN:-$TARGET_DIR/release/meet}
HELLO_BIN=${HELLO_BIN:-$TARGET_DIR/release/examples/hello}
export BENCH_LUA_DIR="$ROOT/bench/lua"

ADMIN_PASSWORD=benchadmin-pass1
HOST_USER=bhost
HOST_PASSWORD=bhost-pass-1
STUDENT_USER=bstudent
STUDENT_PASSWORD=bstudent-pass-1

log() { echo "bench: $*" >&2; }
die() {
    echo "bench: error: $*" >&2
    exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------------------------------------
# Tools

[ -r /proc/self/status ] || die "this harness reads /proc: it runs on Linux"

if ! have wrk; then
    if have apt-get; then
        sudo=()
        [ "$(id -u)" = 0 ] || sudo=(sudo)
        log "installing wrk (apt-get)"
        "${sudo[@]}" apt-get update -qq
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq wrk >/dev/null
    fi
    have wrk || die "wrk is required (Debian/Ubuntu: apt-get install wrk; macOS: brew install wrk)"
fi
for tool in curl python3; do
    have "$tool" || die "$tool is required"
done

if [ "$NO_BUILD" != 1 ]; then
    log "building the release binaries"
    cargo build --release --bin meet --example hello
fi
[ -x "$MEET_BIN" ] || die "$MEET_BIN not found (build it, or unset NO_BUILD)"
[ -x "$HELLO_BIN" ] || die "$HELLO_BIN not found (build it, or unset NO_BUILD)"

# ---------------------------------------------------------------------------------------------
# Scratch space and clean-up

WORK=$(mktemp -d "${TMPDIR:-/tmp}/meet-bench.XXXXXX")
RESULTS="$WORK/results"
: >"$RESULTS"
MEET_PID=
HELLO_PID=

# Stops a process: SIGTERM, then SIGKILL after 10 s.
stop_pid() {
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 1000; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.01
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local status=$?
    set +e
    stop_pid "$HELLO_PID"
    stop_pid "$MEET_PID"
    if [ "$status" != 0 ] && [ -s "$WORK/meet.log" ]; then
        echo "bench: last lines of the meet log:" >&2
        tail -n 20 "$WORK/meet.log" >&2
    fi
    if [ "$KEEP" = 1 ] || [ "$status" != 0 ]; then
        echo "bench: scratch directory kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Helpers

# Microseconds since the epoch, without a subprocess where bash has $EPOCHREALTIME.
now_us() {
    if [ -n "${EPOCHREALTIME:-}" ]; then
        local t=${EPOCHREALTIME//[.,]/}
        echo $((10#$t))
    else
        echo $(($(date +%s%N) / 1000))
    fi
}

free_port() {
    python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

rss_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# A field of the JSON document on stdin, by a dotted path: `jget meeting._id`.
jget() {
    python3 -c '
import json, sys
text = sys.stdin.read()
try:
    d = json.loads(text)
    for k in sys.argv[1].split("."):
        d = d[int(k)] if isinstance(d, list) else d[k]
except (ValueError, KeyError, IndexError, TypeError):
    sys.exit("bench: error: no %s in %r" % (sys.argv[1], text[:400]))
print(d)' "$1"
}

# `api METHOD PATH TOKEN BODY`: the body of a 2xx answer on stdout; anything else is fatal.
api() {
    local method=$1 path=$2 token=${3:-} body=${4:-} code
    local args=(-sS -X "$method" -o "$WORK/answer" -w '%{http_code}' --max-time 30)
    [ -z "$token" ] || args+=(-H "Authorization: Bearer $token")
    [ -z "$body" ] || args+=(-H 'Content-Type: application/json' --data-binary "$body")
    code=$(curl "${args[@]}" "$MEET_URL$path") || die "$method $path: curl failed"
    case $code in
        2??) cat "$WORK/answer" ;;
        *) die "$method $path answered $code: $(head -c 400 "$WORK/answer")" ;;
    esac
}

info() { echo "kind=info $*" >>"$RESULTS"; }

# Starts `meet serve` on the data dir and a fresh port; sets MEET_PID, MEET_URL and READY_MS
# (spawn to the first 200 from /healthz, polled every 5 ms).
start_meet() {
    local port t0 deadline
    port=$(free_port)
    MEET_URL="http://127.0.0.1:$port"
    t0=$(now_us)
    deadline=$((t0 + 30000000))
    # Only the settings below: no meet.toml from the working directory or /etc, none of the
    # caller's MEET_* or legacy variables.
    env -i PATH="$PATH" HOME="${HOME:-/tmp}" \
        MEET_CONFIG="$WORK/meet.toml" \
        MEET_AUTH__ADMIN_PASSWORD="$ADMIN_PASSWORD" \
        MEET_HTTP__RATE_LIMIT__REQUESTS_PER_WINDOW=100000000 \
        MEET_HTTP__RATE_LIMIT__LOGIN_FAILURES=100000000 \
        MEET_MEETINGS__DAILY_LIMIT=1000000 \
        MEET_MEETINGS__MAX_PARTICIPANTS=1000000 \
        MEET_LOGGING__LEVEL=warn \
        "$MEET_BIN" serve --data-dir "$WORK/data" --listen "127.0.0.1:$port" >>"$WORK/meet.log" 2>&1 &
    MEET_PID=$!
    until curl -fs -o /dev/null --max-time 1 "$MEET_URL/healthz"; do
        kill -0 "$MEET_PID" 2>/dev/null || die "meet serve exited before it was ready"
        [ "$(now_us)" -lt "$deadline" ] || die "meet serve was not ready after 30 s"
        sleep 0.005
    done
    READY_MS=$((($(now_us) - t0) / 1000))
}

# `measure NAME LABEL CONNS SCRIPT URL [VAR=value...]`: a warm-up, then the measured wrk run.
measure() {
    local name=$1 label=$2 conns=$3 script=$4 url=$5 threads out line
    shift 5
    threads=$((THREADS < conns ? THREADS : conns))
    out="$WORK/wrk-$name.txt"
    if [ "$WARMUP" != 0 ]; then
        env "$@" wrk -t"$threads" -c"$conns" -d"$WARMUP" --timeout 10s -s "$BENCH_LUA_DIR/$script" "$url" >/dev/null
    fi
    log "$label: $conns connections, $DURATION"
    env "$@" wrk -t"$threads" -c"$conns" -d"$DURATION" --timeout 10s --latency -s "$BENCH_LUA_DIR/$script" "$url" >"$out" 2>&1 ||
        die "wrk failed for $label: $(tail -n 5 "$out")"
    line=$(grep -m1 '^WRK_RESULT ' "$out") || die "no result from wrk for $label: $(tail -n 5 "$out")"
    echo "kind=run name=$name label=${label// /_} conns=$conns ${line#WRK_RESULT }" >>"$RESULTS"
    if grep -q 'Non-2xx' "$out"; then
        log "warning: $label had non-2xx answers ($(grep 'Non-2xx' "$out" | tr -s ' '))"
    fi
}

wants() { [[ " $SCENARIOS " == *" $1 "* ]]; }

# ---------------------------------------------------------------------------------------------
# meet: start-up time and idle memory on a fresh data dir

mkdir -p "$WORK/data"
: >"$WORK/meet.toml"
log "starting meet serve (fresh data dir)"
start_meet
info "ready_ms=$READY_MS"
sleep 1
info "idle_rss_kb=$(rss_kb "$MEET_PID" VmRSS)"
log "ready in $READY_MS ms at $MEET_URL"

# ---------------------------------------------------------------------------------------------
# Fixtures: a host with a meeting, and a student

ADMIN_TOKEN=$(api POST /api/auth/login "" "{\"username\":\"admin\",\"password\":\"$ADMIN_PASSWORD\"}" | jget token)
api POST /api/admin/hosts "$ADMIN_TOKEN" "{\"username\":\"$HOST_USER\",\"password\":\"$HOST_PASSWORD\"}" >/dev/null
HOST_TOKEN=$(api POST /api/auth/login "" "{\"username\":\"$HOST_USER\",\"password\":\"$HOST_PASSWORD\"}" | jget token)
MEETING_ID=$(api POST /api/meetings/create "$HOST_TOKEN" '{"topic":"bench"}' | jget meeting._id)
api POST /api/host/students "$HOST_TOKEN" "{\"username\":\"$STUDENT_USER\",\"password\":\"$STUDENT_PASSWORD\"}" >/dev/null
# Every scenario once by hand, so that a broken one fails here with its answer, not as a rate.
api POST "/api/meetings/$MEETING_ID/join" "$HOST_TOKEN" '{}' >/dev/null
api POST "/api/meetings/$MEETING_ID/join" "$HOST_TOKEN" '{}' >/dev/null
api GET /api/host/meetings "$HOST_TOKEN" >/dev/null
api POST /api/auth/login "" "{\"username\":\"$STUDENT_USER\",\"password\":\"$STUDENT_PASSWORD\"}" >/dev/null
log "fixtures ready: host $HOST_USER, meeting $MEETING_ID, student $STUDENT_USER"

# ---------------------------------------------------------------------------------------------
# The runs

if wants hello; then
    "$HELLO_BIN" 127.0.0.1:0 >"$WORK/hello.log" 2>&1 &
    HELLO_PID=$!
    HELLO_ADDR=
    for ((i = 0; i < 1000; i++)); do
        HELLO_ADDR=$(sed -n 's/^listening on //p' "$WORK/hello.log" | head -n 1)
        [ -z "$HELLO_ADDR" ] || break
        kill -0 "$HELLO_PID" 2>/dev/null || die "hello exited: $(tail -n 5 "$WORK/hello.log")"
        sleep 0.01
    done
    [ -n "$HELLO_ADDR" ] || die "hello did not say where it listens"
    measure hello "hello-world (bare warp)" "$CONNECTIONS" hello.lua "http://$HELLO_ADDR/"
    stop_pid "$HELLO_PID"
    HELLO_PID=
fi
if wants reads; then
    measure reads "GET /api/host/meetings" "$CONNECTIONS" get.lua "$MEET_URL/api/host/meetings" \
        TOKEN="$HOST_TOKEN"
fi
if wants joins; then
    measure joins "POST /api/meetings/:id/join" "$CONNECTIONS" join.lua "$MEET_URL/" \
        TOKEN="$HOST_TOKEN" MEETING_ID="$MEETING_ID"
fi
if wants login; then
    measure login "POST /api/auth/login" "$LOGIN_CONNECTIONS" login.lua "$MEET_URL/" \
        LOGIN_USERNAME="$STUDENT_USER" LOGIN_PASSWORD="$STUDENT_PASSWORD"
fi
info "peak_rss_kb=$(rss_kb "$MEET_PID" VmHWM)"

# ---------------------------------------------------------------------------------------------
# meet: a restart on the data it now has, and how long a SIGTERM takes

t0=$(now_us)
stop_pid "$MEET_PID"
info "stop_ms=$((($(now_us) - t0) / 1000))"
MEET_PID=
log "restarting meet serve on the same data dir"
start_meet
info "restart_ready_ms=$READY_MS"
sleep 1
info "restart_idle_rss_kb=$(rss_kb "$MEET_PID" VmRSS)"
stop_pid "$MEET_PID"
MEET_PID=

# ---------------------------------------------------------------------------------------------
# The report

revision=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
echo
echo "meet HTTP benchmark: revision $revision, $(nproc) CPUs, wrk $THREADS threads, $DURATION per run (warm-up $WARMUP)"
echo "(wrk, meet and hello-world share this machine's CPUs: compare the ratios more than the rates)"
python3 "$ROOT/bench/report.py" "$RESULTS" "$JSON_OUT"
