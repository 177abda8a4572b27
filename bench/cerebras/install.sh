#!/usr/bin/env bash
# Installs the official Cerebras TypeScript SDK that bench/run.sh streams with beside wafer
# (package-lock.json here pins @cerebras/cerebras_cloud_sdk) into DIR: ts_stream.mjs,
# package.json and node_modules (see tests/mcp/npm-ci-locked.sh).
# Usage: bench/cerebras/install.sh DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec bash "$here/../../tests/mcp/npm-ci-locked.sh" "bench cerebras" "$here" "$1" \
    node_modules/@cerebras/cerebras_cloud_sdk/package.json "$here/ts_stream.mjs"
