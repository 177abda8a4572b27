#!/usr/bin/env bash
# Installs the OpenTelemetry protobuf definitions the OTLP test collector decodes with
# (package-lock.json here pins them) into DIR/node_modules, and copies collector.js beside them
# (see ../mcp/npm-ci-locked.sh).
# Usage: tests/otel/install-collector.sh DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec bash "$here/../mcp/npm-ci-locked.sh" "otlp collector" "$here" "$1" \
    node_modules/@opentelemetry/otlp-transformer/build/src/generated/root.js "$here/collector.js"
