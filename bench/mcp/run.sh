#!/usr/bin/env bash
# MCP tool calls over stdio: wafer's client (bench/mcp_bench.cpp) beside the official TypeScript
# SDK's (ts_client.mjs here, @modelcontextprotocol/sdk pinned by package-lock.json), both calling
# server-everything's echo through the same command (node and the tests' pinned server,
# tests/mcp/package-lock.json). Each client's own CPU per call, sequential and 16 in flight; rounds
# alternate between the two clients and the summary takes each one's lowest.
# usage: bench/mcp/run.sh <builddir>   (env: MCP_BENCH_ROUNDS=3, MCP_BENCH_CALLS=2000)
set -euo pipefail

build=${1:?usage: bench/mcp/run.sh <builddir>}
rounds=${MCP_BENCH_ROUNDS:-3}
calls=${MCP_BENCH_CALLS:-2000}
here=$(cd "$(dirname "$0")" && pwd)
bench="$build/bench/wafer_mcp_bench"

if [[ ! -x "$bench" ]]; then
    echo "bench: $bench not built (cmake --build $build --target wafer_mcp_bench)" >&2
    exit 0
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "bench: node and npm are required for the MCP benchmark (apt-get install nodejs npm)" >&2
    exit 0
fi
bash "$here/../../tests/mcp/install-servers.sh" "$build/mcp-servers"
bash "$here/install.sh" "$build/bench-mcp"

out=$(mktemp)
trap 'rm -f "$out"' EXIT INT TERM
node=$(command -v node)
server="$build/mcp-servers/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
echo "mcp server: $node $server stdio ($("$node" --version)); $calls calls per mode, $rounds rounds"
for _ in $(seq 1 "$rounds"); do
    "$bench" --node "$node" --server "$server" --calls "$calls" | tee -a "$out"
    "$node" "$build/bench-mcp/ts_client.mjs" --node "$node" --server "$server" --calls "$calls" \
        | tee -a "$out"
done

# Lowest CPU (and wall) per call of each client and mode, then TS / wafer.
awk '
    function field(k,   i) {
        for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) return substr($i, length(k) + 2)
        return ""
    }
    /^name=mcp_echo / {
        key = field("client") SUBSEP field("mode"); modes[field("mode")] = 1
        c = field("cpu_us_per_call") + 0; w = field("wall_us_per_call") + 0
        if (!(key in cpu) || c < cpu[key]) cpu[key] = c
        if (!(key in wall) || w < wall[key]) wall[key] = w
    }
    END {
        split("sequential parallel", order, " ")
        for (i = 1; i <= 2; i++) {
            m = order[i]; if (!(m in modes)) continue
            a = "wafer" SUBSEP m; b = "ts_sdk" SUBSEP m
            printf "mcp_echo %s: client_cpu_us_per_call wafer=%.1f ts_sdk=%.1f ratio=%.2f  " \
                "wall_us_per_call wafer=%.1f ts_sdk=%.1f ratio=%.2f  (ratio = TS / wafer; target cpu >= 5)\n",
                m, cpu[a], cpu[b], (cpu[a] > 0 ? cpu[b] / cpu[a] : 0),
                wall[a], wall[b], (wall[a] > 0 ? wall[b] / wall[a] : 0)
        }
    }' "$out"
