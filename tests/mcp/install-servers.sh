#!/usr/bin/env bash
# Installs the MCP servers the client is tested against (package-lock.json here pins them) into
# DIR/node_modules (see npm-ci-locked.sh).
# Usage: tests/mcp/install-servers.sh DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec bash "$here/npm-ci-locked.sh" "mcp servers" "$here" "$1" node_modules/.bin/mcp-server-everything
