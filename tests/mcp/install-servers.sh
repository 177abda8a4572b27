#!/usr/bin/env bash
# Installs the MCP servers the client is tested against (package-lock.json here pins them) into
# DIR/node_modules. `npm ci` runs only when the lock file changed since DIR's last install.
# Usage: tests/mcp/install-servers.sh DIR
set -euo pipefail
dir=$1
here=$(cd "$(dirname "$0")" && pwd)
for tool in node npm; do
    command -v "$tool" >/dev/null || { echo "mcp servers: '$tool' is missing" >&2; exit 1; }
done
mkdir -p "$dir"
install -m 644 "$here/package.json" "$here/package-lock.json" "$dir/"
if cmp -s "$dir/package-lock.json" "$dir/.installed-lock.json" &&
    [ -x "$dir/node_modules/.bin/mcp-server-everything" ]; then
    exit 0
fi
echo "mcp servers: npm ci in $dir"
for try in 1 2 3; do
    if (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) > "$dir/npm.log" 2>&1; then
        cp "$dir/package-lock.json" "$dir/.installed-lock.json"
        exit 0
    fi
    echo "mcp servers: npm ci failed (try $try)" >&2
    sleep 5
done
cat "$dir/npm.log" >&2
exit 1
