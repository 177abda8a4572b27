#!/usr/bin/env bash
# Installs the npm packages a package-lock.json pins, for the tests and benchmarks that run real
# MCP programs: copies SRC's package.json, package-lock.json (and any EXTRA files) into DIR and
# runs `npm ci` there, only when the lock file changed since DIR's last install or DIR/CHECK is
# missing. Three tries (the registry is on the network).
# Usage: tests/mcp/npm-ci-locked.sh LABEL SRC DIR CHECK [EXTRA...]
set -euo pipefail
label=$1 src=$2 dir=$3 check=$4
shift 4
for tool in node npm; do
    command -v "$tool" >/dev/null || { echo "$label: '$tool' is missing" >&2; exit 1; }
done
mkdir -p "$dir"
install -m 644 "$src/package.json" "$src/package-lock.json" "$@" "$dir/"
if cmp -s "$dir/package-lock.json" "$dir/.installed-lock.json" && [ -e "$dir/$check" ]; then
    exit 0
fi
echo "$label: npm ci in $dir"
for try in 1 2 3; do
    if (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) > "$dir/npm.log" 2>&1; then
        cp "$dir/package-lock.json" "$dir/.installed-lock.json"
        exit 0
    fi
    echo "$label: npm ci failed (try $try)" >&2
    sleep 5
done
cat "$dir/npm.log" >&2
exit 1
