#!/usr/bin/env bash
# Runs every fuzz harness for SECONDS each, FUZZ_JOBS of them at a time (default: the core
# count; see README.md).
# Usage: tests/fuzz/run.sh BUILD_DIR SECONDS [HARNESS...]
# Each harness first replays its committed regressions, then fuzzes a working copy of its seed
# corpus under BUILD_DIR/fuzz-corpus/ (the committed seeds stay untouched; the copy keeps growing
# across runs). A crash, leak, timeout or failed property fails the script; the input is written
# to BUILD_DIR/fuzz-artifacts/<harness>/.
set -u
build=$1
seconds=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
harnesses=("$@")
if [ ${#harnesses[@]} -eq 0 ]; then
    harnesses=(sse_stream chat_response error_body retry_headers schema conversation tool_arguments
        mcp_framing mcp_session admission)
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# One harness: its summary line into fuzz-logs/<h>.summary, and fuzz-logs/<h>.failed on a finding.
fuzz_one() {
    local h=$1
    local bin=$build/tests/fuzz/fuzz_$h
    local corpus=$build/fuzz-corpus/$h
    local artifacts=$build/fuzz-artifacts/$h
    local log=$build/fuzz-logs/$h.log
    mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
    rm -f "$log.failed" "$build/fuzz-logs/$h.failed" "$build/fuzz-logs/$h.summary"
    cp -n "$here/corpus/$h/"* "$corpus/" 2>/dev/null
    local dict=()
    [ -f "$here/dict/$h.dict" ] && dict=(-dict="$here/dict/$h.dict")
    local common=(-timeout=10 -rss_limit_mb=2048 -max_len=16384 "${dict[@]}")

    local regressions=("$here/regressions/$h"/*)
    if [ -e "${regressions[0]}" ]; then
        if ! "$bin" "${common[@]}" "${regressions[@]}" >"$log.regressions" 2>&1; then
            {
                echo "fuzz $h: a committed regression fails again (log: $log.regressions)"
                tail -n 30 "$log.regressions"
            } > "$build/fuzz-logs/$h.summary"
            touch "$build/fuzz-logs/$h.failed"
            return
        fi
    fi

    "$bin" "${common[@]}" -max_total_time="$seconds" -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1
    local rc=$?
    local execs cov line
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
    line=$(printf '%-15s %10s executions  %-10s  corpus %s files' "$h" "${execs:-?}" "${cov:-}" \
        "$(ls "$corpus" | wc -l)")
    {
        if [ $rc -ne 0 ]; then
            line="$line  FAILED (exit $rc, log: $log)"
            grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz property failed|.*runtime error)' "$log" | head -n 5
            grep -E '^artifact_prefix|Test unit written to' "$log" | tail -n 1
            touch "$build/fuzz-logs/$h.failed"
        fi
        echo "$line"
    } > "$build/fuzz-logs/$h.summary"
}

# Harnesses are independent processes, each on one core: run as many as there are cores.
jobs=${FUZZ_JOBS:-$(nproc)}
mkdir -p "$build/fuzz-logs"
for h in "${harnesses[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
        wait -n
    done
    fuzz_one "$h" &
done
wait

failed=()
summary=""
for h in "${harnesses[@]}"; do
    cat "$build/fuzz-logs/$h.summary"
    summary+="$(tail -n 1 "$build/fuzz-logs/$h.summary")"$'\n'
    [ -e "$build/fuzz-logs/$h.failed" ] && failed+=("$h")
done
echo
echo "== fuzz summary ($seconds s per harness)"
printf '%s' "$summary"
if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz: findings in: ${failed[*]}"
    exit 1
fi
