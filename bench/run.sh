#!/usr/bin/env bash
# Streaming CPU benchmark against wafer-fake: wafer's client vs curl, side by side; then `wafer ask`
# beside the client, and the official Cerebras TypeScript SDK beside both (where node is).
# usage: bench/run.sh <builddir> [chunks]
set -euo pipefail

build=${1:?usage: bench/run.sh <builddir> [chunks]}
chunks=${2:-100000}
fake="$build/tests/support/wafer-fake"
bench="$build/bench/wafer_stream_bench"

command -v curl >/dev/null 2>&1 || { echo "bench: curl is required (apt-get install curl)" >&2; exit 1; }
[[ -x "$fake" ]] || { echo "bench: $fake not built (cmake --build $build --target wafer-fake)" >&2; exit 1; }
[[ -x "$bench" ]] || { echo "bench: $bench not built (cmake --build $build --target wafer_stream_bench)" >&2; exit 1; }

tmp=$(mktemp -d)
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

"$fake" --bench-chunks "$chunks" >"$tmp/fake.out" 2>"$tmp/fake.err" &
server_pid=$!
url=""
for _ in $(seq 1 100); do
    url=$(sed -n 's/^listening on \(http[^ ]*\).*/\1/p' "$tmp/fake.out" | head -n1)
    [[ -n "$url" ]] && break
    kill -0 "$server_pid" 2>/dev/null || { echo "bench: wafer-fake exited:" >&2; cat "$tmp/fake.err" >&2; exit 1; }
    sleep 0.05
done
[[ -n "$url" ]] || { echo "bench: wafer-fake did not report its port" >&2; exit 1; }
echo "server: $url, $chunks chunks per stream"

body='{"model":"zai-glm-4.7","messages":[{"role":"user","content":"bench"}],"stream":true,"stream_options":{"include_usage":true}}'

# (a) curl -sN consuming the stream; its CPU (user+sys) from GNU time or bash's `times`.
curl_cpu_us() {
    if [[ -x /usr/bin/time ]]; then
        /usr/bin/time -f '%U %S' -o "$tmp/time" curl -sN -H 'Content-Type: application/json' \
            -d "$body" "$url/v1/chat/completions" >"$tmp/curl.out"
        awk '{printf "%.0f", ($1 + $2) * 1e6}' "$tmp/time"
    else
        # bash: children's user/sys times before and after (via a subshell's `times`).
        ( curl -sN -H 'Content-Type: application/json' -d "$body" "$url/v1/chat/completions" >"$tmp/curl.out"; times ) \
            | tail -n1 | awk '{
                split($1, u, /[ms]/); split($2, s, /[ms]/);
                printf "%.0f", ((u[1] * 60 + u[2]) + (s[1] * 60 + s[2])) * 1e6 }'
    fi
}
curl_us=$(curl_cpu_us)
curl_events=$(grep -c '^data: ' "$tmp/curl.out" || true)

# (b) wafer's client (async_stream + next loop), CPU via getrusage(RUSAGE_SELF) around the stream.
best=""
for mode in next try_next; do
    line=$("$bench" "$url" --mode "$mode")
    echo "wafer ($mode): $line"
    per=$(sed -n 's/.*client_cpu_us_per_chunk=\([0-9.]*\).*/\1/p' <<<"$line")
    got=$(sed -n 's/^chunks=\([0-9]*\).*/\1/p' <<<"$line")
    if [[ -z "$best" ]] || awk -v a="$per" -v b="$best" 'BEGIN{exit !(a < b)}'; then best=$per; fi
done

curl_per=$(awk -v t="$curl_us" -v n="$curl_events" 'BEGIN{ printf "%.3f", (n > 0 ? t / n : 0) }')
ratio=$(awk -v a="$best" -v b="$curl_per" 'BEGIN{ printf "%.2f", (b > 0 ? a / b : 0) }')
echo "curl: events=$curl_events cpu_us=$curl_us"
echo "client_cpu_us_per_chunk=$best  curl_cpu_us_per_chunk=$curl_per  ratio=$ratio  (target <= 0.5 us; chunks=$got)"

# (c) `wafer ask` on the same stream: the whole process's CPU (GNU time, or bash's `times`)
# against 100,000 chunks, less its CPU against a one-chunk stream (start-up, connect, exit), per
# chunk; the output goes to a pipe, as in `wafer ask ... | less`.
cli="$build/examples/cli/wafer"
process_cpu_us() { # command... : user+sys of the command, in microseconds; stdout to a pipe
    if command -v python3 >/dev/null 2>&1; then
        # wait4's rusage in microseconds (GNU time prints hundredths of a second only).
        python3 -c '
import os, subprocess, sys
p = subprocess.Popen(sys.argv[2:], stdout=subprocess.PIPE)
n = 0
while True:
    b = p.stdout.read(65536)
    if not b:
        break
    n += len(b)
_, status, ru = os.wait4(p.pid, 0)
open(sys.argv[1], "w").write(str(n))
print(round((ru.ru_utime + ru.ru_stime) * 1e6))
' "$tmp/bytes" "$@"
    elif [[ -x /usr/bin/time ]]; then
        /usr/bin/time -f '%U %S' -o "$tmp/time" "$@" | wc -c >"$tmp/bytes"
        awk '{printf "%.0f", ($1 + $2) * 1e6}' "$tmp/time"
    else
        ( "$@" | wc -c >"$tmp/bytes"; times ) | tail -n1 | awk '{
            split($1, u, /[ms]/); split($2, s, /[ms]/);
            printf "%.0f", ((u[1] * 60 + u[2]) + (s[1] * 60 + s[2])) * 1e6 }'
    fi
}
if [[ -x "$cli" ]]; then
    "$fake" --bench-chunks 1 >"$tmp/fake1.out" 2>"$tmp/fake1.err" &
    one_pid=$!
    url1=""
    for _ in $(seq 1 100); do
        url1=$(sed -n 's/^listening on \(http[^ ]*\).*/\1/p' "$tmp/fake1.out" | head -n1)
        [[ -n "$url1" ]] && break
        sleep 0.05
    done
    ask_best="" base_best=""
    for _ in 1 2 3 4 5; do # the lowest of five, like the client's two modes above
        full=$(process_cpu_us "$cli" ask --base-url "$url" bench)
        ask_bytes=$(cat "$tmp/bytes")
        base=$(process_cpu_us "$cli" ask --base-url "$url1" bench)
        if [[ -z "$ask_best" ]] || (( full < ask_best )); then ask_best=$full; fi
        if [[ -z "$base_best" ]] || (( base < base_best )); then base_best=$base; fi
    done
    kill "$one_pid" 2>/dev/null || true; wait "$one_pid" 2>/dev/null || true
    ask_per=$(awk -v a="$ask_best" -v b="$base_best" -v n="$chunks" \
        'BEGIN{ printf "%.3f", (n > 1 ? (a - b) / (n - 1) : 0) }')
    ask_ratio=$(awk -v a="$ask_per" -v b="$best" 'BEGIN{ printf "%.2f", (b > 0 ? a / b : 0) }')
    echo "wafer ask: cpu_us=$ask_best (one-chunk stream: $base_best) stdout_bytes=$ask_bytes"

    # (d) the official Cerebras TypeScript SDK on the same stream, where node and npm are.
    ts_per="n/a (node or npm missing)"
    if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 &&
        bash "$(dirname "$0")/cerebras/install.sh" "$build/bench-cerebras" >&2; then
        ts_best=""
        for _ in 1 2 3; do
            line=$(node "$build/bench-cerebras/ts_stream.mjs" "$url")
            echo "cerebras ts sdk ($(node --version)): $line"
            per=$(sed -n 's/.*ts_sdk_cpu_us_per_chunk=\([0-9.]*\).*/\1/p' <<<"$line")
            if [[ -z "$ts_best" ]] || awk -v a="$per" -v b="$ts_best" 'BEGIN{exit !(a < b)}'; then ts_best=$per; fi
        done
        ts_per=$ts_best
    fi
    echo "wafer_ask_cpu_us_per_chunk=$ask_per  library_cpu_us_per_chunk=$best  ratio=$ask_ratio  (target <= 1.5)  cerebras_ts_sdk_cpu_us_per_chunk=$ts_per  (chunks=$chunks)"
else
    echo "bench: $cli not built (cmake --build $build --target wafer_cli)" >&2
fi

# Agent benchmarks (bench/agent_bench.cpp): 8 x 100 ms tools in one turn, CPU per turn over loopback,
# memory per concurrent run (starts its own wafer-fake).
agent_bench="$build/bench/wafer_agent_bench"
if [[ -x "$agent_bench" ]]; then
    "$agent_bench" --fake "$fake"
else
    echo "bench: $agent_bench not built (cmake --build $build --target wafer_agent_bench wafer-fake)" >&2
fi

# Admission control: the same 200 concurrent runs against a rate-limited wafer-fake with
# admission off (SDK-style retries) and on (bench/admission_bench.cpp).
if [[ -x "$build/bench/wafer_admission_bench" ]]; then
    "$build/bench/wafer_admission_bench" --fake "$fake"
fi

# Tool dispatch alone (bench/dispatch_bench.cpp).
if [[ -x "$build/bench/wafer_dispatch_bench" ]]; then
    "$build/bench/wafer_dispatch_bench"
fi

# What critics add per gate beyond their own model time (bench/critic_bench.cpp).
if [[ -x "$build/bench/wafer_critic_bench" ]]; then
    "$build/bench/wafer_critic_bench"
fi

# Context compaction: one pass over a 120k-token history; the cache-friendly prefix count.
if [[ -x "$build/bench/wafer_context_bench" ]]; then
    "$build/bench/wafer_context_bench"
fi

# Journaling one step of a durable run: sqlite FULL / NORMAL and memory (bench/store_bench.cpp).
# Its files go to the build directory (a real disk, so fsyncs cost what they cost).
if [[ -x "$build/bench/wafer_store_bench" ]]; then
    "$build/bench/wafer_store_bench" --dir "$build"
fi

# MCP tool calls over stdio, wafer's client beside the TypeScript SDK's (bench/mcp/run.sh).
bash "$(dirname "$0")/mcp/run.sh" "$build"

# The run queue on PostgreSQL: runs/s with 1, 2 and 3 worker processes, claim latency
# (bench/queue_bench.cpp), on a throwaway cluster of its own (tests/pg/cluster.sh).
queue_bench="$build/bench/wafer_queue_bench"
queue_worker="$build/tests/wafer-queue-worker"
cluster="$(dirname "$0")/../tests/pg/cluster.sh"
if [[ -x "$queue_bench" && -x "$queue_worker" ]]; then
    pg_key="$build/bench-pg"
    if pg_conninfo=$(bash "$cluster" start "$pg_key" 2>"$tmp/pg.err"); then
        "$queue_bench" --worker "$queue_worker" --conninfo "$pg_conninfo" || true
        bash "$cluster" stop "$pg_key" >/dev/null 2>&1 || true
    else
        echo "bench: no PostgreSQL cluster for the queue benchmark:" >&2
        cat "$tmp/pg.err" >&2
    fi
else
    echo "bench: $queue_bench or $queue_worker not built" >&2
fi
