#!/usr/bin/env bash
# The Debian package, installed on this machine as an operator would: built from the binary the
# tests built (packaging/build-deb), its files and fields, the unit checked by
# systemd-analyze, installed with dpkg, the packaged server run as the meet user with the
# packaged configuration, `meet admin` with no flags, an upgrade that keeps the data and an
# edited conffile, remove (data kept) and purge (data and user gone).
# Needs root and dpkg: skipped, saying so, otherwise. Run by tests/run.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '== package: %s\n' "$*"; }
fail() { printf 'package test FAILED: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" != 0 ] || ! command -v dpkg >/dev/null 2>&1; then
    say "skipped (needs root and dpkg)"
    exit 0
fi
if dpkg -s meet >/dev/null 2>&1 && [ "${MEET_PACKAGE_TEST_FORCE:-0}" != 1 ]; then
    say "skipped: a meet package is installed here already (MEET_PACKAGE_TEST_FORCE=1 replaces it)"
    exit 0
fi
for tool in systemd-analyze runuser curl; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is missing"
done

deb=$(packaging/build-deb --profile "${PROFILE:-dev}" | tail -1)
say "built $deb ($(du -h "$deb" | cut -f1))"

files=$(dpkg-deb -c "$deb")
for f in ./usr/bin/meet ./etc/meet/meet.toml ./usr/lib/systemd/system/meet.service \
    ./usr/lib/sysusers.d/meet.conf ./usr/share/meet/index.html ./usr/share/meet/js/app.js ./usr/share/meet/js/ui/room.js \
    ./usr/share/meet/vendor/socket.io.min.js ./usr/share/meet/vendor/socket.io-client.LICENSE ./usr/share/man/man1/meet.1.gz \
    ./usr/share/bash-completion/completions/meet ./usr/share/zsh/vendor-completions/_meet \
    ./usr/share/fish/vendor_completions.d/meet.fish ./usr/share/doc/meet/README.md \
    ./usr/share/doc/meet/API.md ./usr/share/doc/meet/CHANGELOG.md ./usr/share/doc/meet/openapi.json; do
    grep -q " $f\$" <<<"$files" || fail "$f is not in the package"
done
grep -q -- '-rw-r----- 0/0 .* ./etc/meet/meet.toml$' <<<"$files" || fail "meet.toml is not 0640"
[ "$(dpkg-deb -f "$deb" Package)" = meet ] || fail "Package field"
dpkg-deb -f "$deb" Depends | grep -q libc6 || fail "Depends field"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx /etc/meet/meet.toml || fail "conffile"
file_of() { dpkg-deb --fsys-tarfile "$deb" | tar -xO "$1"; }
file_of ./usr/bin/meet >/tmp/meet-packaged && chmod +x /tmp/meet-packaged
file /tmp/meet-packaged 2>/dev/null | grep -q 'not stripped' && fail "the binary is not stripped"
file_of ./usr/share/man/man1/meet.1.gz | gzip -dc | grep -q '^\.TH meet 1' || fail "meet(1)"
rm -f /tmp/meet-packaged

# A failure below must not leave the package installed (the next run would skip itself) nor
# its server running.
server=
cleanup() {
    if [ -n "$server" ]; then
        kill -TERM "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    if dpkg -s meet >/dev/null 2>&1; then
        dpkg -P meet >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

started=$(date +%s.%N)
dpkg -i "$deb" >/tmp/meet-dpkg.log 2>&1 || { cat /tmp/meet-dpkg.log; fail "dpkg -i"; }
grep -q "journalctl -u meet" /tmp/meet-dpkg.log || fail "postinst does not say where the admin password is"
grep -q "meet top" /tmp/meet-dpkg.log || fail "postinst does not mention meet top"
getent passwd meet >/dev/null || fail "no meet user"
[ "$(stat -c '%U:%G %a' /var/lib/meet)" = "meet:meet 750" ] || fail "/var/lib/meet ownership"
[ "$(stat -c '%U:%G %a' /etc/meet/meet.toml)" = "root:meet 640" ] || fail "meet.toml ownership"
systemd-analyze verify /usr/lib/systemd/system/meet.service || fail "systemd-analyze verify"
if [ -d /run/systemd/system ]; then
    systemctl is-active --quiet meet && fail "the package started the service by itself"
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
serve() {
    # As the unit runs it, without systemd: the meet user, the packaged config, its data dir.
    (cd /var/lib/meet && exec runuser -u meet -- /usr/bin/meet serve --config /etc/meet/meet.toml \
        --listen "127.0.0.1:$port") >>/tmp/meet-serve.log 2>&1 &
    server=$!
    for _ in $(seq 300); do
        curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
        kill -0 "$server" 2>/dev/null || { cat /tmp/meet-serve.log; fail "the server exited"; }
        sleep 0.1
    done
    cat /tmp/meet-serve.log
    fail "no /healthz answer"
}
stop() {
    kill -TERM "$server"
    wait "$server" || true
    server=
}
: >/tmp/meet-serve.log
# A mark in the installed client: served only if the packaged config's web.assets_dir is used.
echo "// served from /usr/share/meet" >>/usr/share/meet/js/app.js
serve
ready=$(python3 -c "import time; print(f'{time.time() - $started:.1f}')")
say "dpkg -i to /healthz: ${ready} s"
grep -q "password" /tmp/meet-serve.log || fail "the first admin password was not printed"
curl -fsS "http://127.0.0.1:$port/" | grep -q 'src="/js/app.js"' || fail "/ does not serve the web client"
curl -fsS "http://127.0.0.1:$port/js/app.js" | grep -q "served from /usr/share/meet" ||
    fail "/js/app.js is not the one in /usr/share/meet"
# The packaged admin command finds the packaged server with no flags (from any folder).
(cd / && meet admin host add packaged-host --password-stdin <<<"packaged-pass") >/dev/null ||
    fail "meet admin host add"
(cd / && meet admin host list) | grep -q packaged-host || fail "meet admin host list"
stop

say "upgrade keeps the data and an edited conffile"
echo '# edited by the operator' >>/etc/meet/meet.toml
dpkg -i --force-confold "$deb" >/tmp/meet-dpkg.log 2>&1 || { cat /tmp/meet-dpkg.log; fail "upgrade"; }
tail -1 /etc/meet/meet.toml | grep -q 'edited by the operator' || fail "the edited conffile was replaced"
serve
(cd / && meet admin host list) | grep -q packaged-host || fail "the data did not survive the upgrade"
stop

say "remove keeps /var/lib/meet, purge removes it and the user"
dpkg -r meet >/dev/null
[ -d /var/lib/meet ] || fail "dpkg -r removed /var/lib/meet"
[ -e /usr/bin/meet ] && fail "dpkg -r left /usr/bin/meet"
dpkg -P meet >/dev/null
[ -e /var/lib/meet ] && fail "dpkg -P kept /var/lib/meet"
getent passwd meet >/dev/null && fail "dpkg -P kept the meet user"
say "ok"
