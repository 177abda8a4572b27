#!/usr/bin/env bash
# Installs the TypeScript SDK client that bench/mcp/run.sh runs beside wafer's MCP client
# (package-lock.json here pins @modelcontextprotocol/sdk) into DIR: ts_client.mjs, package.json
# and node_modules (see tests/mcp/npm-ci-locked.sh).
# Usage: bench/mcp/install.sh DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec bash "$here/../../tests/mcp/npm-ci-locked.sh" "bench mcp" "$here" "$1" \
    node_modules/@modelcontextprotocol/sdk/package.json "$here/ts_client.mjs"
