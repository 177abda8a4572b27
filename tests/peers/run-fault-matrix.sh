#!/usr/bin/env bash
# The fault matrix: starts real third-party peers on 127.0.0.1 (toxy, nginx TLS, tinyproxy,
# nghttpd; see ../shared/peers/README.md), runs the `peers/*` test suite of wafer_tests against
# them, and stops them on every exit path.
#
# usage: tests/peers/run-fault-matrix.sh BUILD_DIR [extra wafer_tests arguments]
#   WAFER_SHARED_DIR       the shared directory (default: ../shared next to the repository); it may
#                          be read-only: what is needed is copied to BUILD_DIR/peers
#   WAFER_PEERS_PORT_BASE  first of the ports used (default 28700; base+0 .. base+31)
#
# Ports (base + offset): 0 the tests' fake server (upstream of every peer), 1 toxy, 10 nginx good
# certificate, 11 nginx wrong-name certificate, 12 nginx with a 1 s upstream read timeout,
# 13 nginx TLS 1.3 only, 14 nginx TLS 1.2 only, 20 nghttpd (HTTP/2 only), 30 tinyproxy,
# 31 tinyproxy with Basic auth (user:secret).
set -euo pipefail

[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [wafer_tests args]" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$1" && pwd)
shift
shared=${WAFER_SHARED_DIR:-$repo/../shared}
base=${WAFER_PEERS_PORT_BASE:-28700}
tests_bin=$build/tests/wafer_tests
work=$build/peers
src=$shared/peers

for tool in node npm nginx tinyproxy nghttpd openssl; do
    command -v "$tool" >/dev/null || {
        echo "fault matrix: '$tool' is missing (make fault-test installs the Debian packages)" >&2
        exit 1
    }
done
[ -f "$src/package-lock.json" ] || {
    echo "fault matrix: no peers in $src (set WAFER_SHARED_DIR)" >&2
    exit 1
}
[ -x "$tests_bin" ] || { echo "fault matrix: $tests_bin is not built" >&2; exit 1; }

mkdir -p "$work/node" "$work/tls" "$work/run" "$work/logs" "$work/h2root"
rm -rf "$work/run"/* "$work/logs"/*

# toxy from the pinned lock file. `npm ci` only when the lock file changed since the last install.
for f in package.json package-lock.json toxy-faults.cjs; do
    install -m 644 "$src/$f" "$work/node/$f"
done
if ! cmp -s "$work/node/package-lock.json" "$work/node/.installed-lock.json"; then
    echo "fault matrix: npm ci in $work/node (once)"
    (cd "$work/node" && npm ci --no-audit --no-fund --loglevel=error) > "$work/logs/npm.log" 2>&1 || {
        cat "$work/logs/npm.log" >&2
        exit 1
    }
    cp "$work/node/package-lock.json" "$work/node/.installed-lock.json"
fi

# A throwaway CA and certificates, made fresh each run (they expire after 30 days).
install -m 755 "$src/scripts/mkcerts.sh" "$work/mkcerts.sh"
rm -rf "$work/tls" && mkdir -p "$work/tls"
"$work/mkcerts.sh" "$work/tls" > "$work/logs/mkcerts.log"
echo '{}' > "$work/h2root/index.html"

port() { echo $((base + $1)); }
all_ports=(0 1 10 11 12 13 14 20 30 31)
for off in "${all_ports[@]}"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$(port "$off")") 2>/dev/null; then
        echo "fault matrix: 127.0.0.1:$(port "$off") is in use (set WAFER_PEERS_PORT_BASE)" >&2
        exit 1
    fi
done

substitute() { # template output [extra sed args]
    local in=$1 out=$2
    shift 2
    local args=(-e "s#@RUN@#$work/run#g" -e "s#@TLS@#$work/tls#g" -e "s#@UPSTREAM@#127.0.0.1:$(port 0)#g")
    for off in "${all_ports[@]}"; do args+=(-e "s#@P$off@#$(port "$off")#g"); done
    sed "${args[@]}" "$@" "$in" > "$out"
}
substitute "$repo/tests/peers/nginx.conf.in" "$work/run/nginx.conf"
substitute "$repo/tests/peers/tinyproxy.conf.in" "$work/run/tinyproxy.conf" \
    -e "s#@PORT@#$(port 30)#" -e "s#@AUTH@##"
substitute "$repo/tests/peers/tinyproxy.conf.in" "$work/run/tinyproxy-auth.conf" \
    -e "s#@PORT@#$(port 31)#" -e "s#@AUTH@#BasicAuth user secret#"

pids=()
stop_all() {
    local i
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill "${pids[$i]}" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null || true
    done
}
trap stop_all EXIT
trap 'exit 130' INT TERM

start() { # name port command...
    local name=$1 p=$2
    shift 2
    "$@" > "$work/logs/$name.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 1 120); do # 30 s
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "fault matrix: $name exited, see $work/logs/$name.log:" >&2
            tail -5 "$work/logs/$name.log" >&2
            return 1
        fi
        sleep 0.25
    done
    echo "fault matrix: $name did not open 127.0.0.1:$p within 30 s" >&2
    return 1
}

started=$(date +%s)
# toxy: latency 1000 ms; `timeout` gives up on a response idle for 500 ms.
start toxy "$(port 1)" env PORT="$(port 1)" UPSTREAM="http://127.0.0.1:$(port 0)" \
    LATENCY_MS=1000 TIMEOUT_MS=500 node "$work/node/toxy-faults.cjs"
start nginx "$(port 10)" nginx -p "$work/run" -c "$work/run/nginx.conf" -e "$work/run/error.log"
start tinyproxy "$(port 30)" tinyproxy -d -c "$work/run/tinyproxy.conf"
start tinyproxy-auth "$(port 31)" tinyproxy -d -c "$work/run/tinyproxy-auth.conf"
start nghttpd "$(port 20)" nghttpd --address=127.0.0.1 -d "$work/h2root" "$(port 20)" \
    "$work/tls/server.key" "$work/tls/server.crt"
echo "fault matrix: peers up in $(($(date +%s) - started)) s (logs in $work/logs, $work/run)"

WAFER_PEERS_DIR=$work WAFER_PEERS_PORT_BASE=$base "$tests_bin" --test-suite='peers*' "$@"
