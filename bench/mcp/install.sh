#!/usr/bin/env bash
# Installs the TypeScript SDK client that bench/mcp/run.sh runs beside wafer's MCP client
# (package-lock.json here pins @modelcontextprotocol/sdk) into DIR: ts_client.mjs, package.json
# and node_modules. `npm ci` runs only when the lock file changed since DIR's last install.
# Usage: bench/mcp/install.sh DIR
set -euo pipefail
dir=$1
here=$(cd "$(dirname "$0")" && pwd)
for tool in node npm; do
    command -v "$tool" >/dev/null || { echo "bench mcp: '$tool' is missing" >&2; exit 1; }
done
mkdir -p "$dir"
install -m 644 "$here/package.json" "$here/package-lock.json" "$here/ts_client.mjs" "$dir/"
if cmp -s "$dir/package-lock.json" "$dir/.installed-lock.json" &&
    [ -f "$dir/node_modules/@modelcontextprotocol/sdk/package.json" ]; then
    exit 0
fi
echo "bench mcp: npm ci in $dir"
for try in 1 2 3; do
    if (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) > "$dir/npm.log" 2>&1; then
        cp "$dir/package-lock.json" "$dir/.installed-lock.json"
        exit 0
    fi
    echo "bench mcp: npm ci failed (try $try)" >&2
    sleep 5
done
cat "$dir/npm.log" >&2
exit 1
