#!/bin/sh
# Runs the test cases of stats.sh: one line per case, a summary, and a non-zero exit status if
# any case fails. Needs only /bin/sh and awk.
cd "$(dirname "$0")/.." || exit 2
passed=0
failed=0

# check NAME OPERATION "NUMBERS" EXPECTED
check() {
    got=$(printf '%s\n' $3 | sh ./stats.sh "$2" 2>&1)
    if [ "$got" = "$4" ]; then
        passed=$((passed + 1))
        echo "PASS $1"
    else
        failed=$((failed + 1))
        echo "FAIL $1: expected $4, got $got"
    fi
}

check "count" count "3 5 7" 3
check "sum" sum "3 5 7" 15
check "mean" mean "2 4 9" 5
check "min of mixed values" min "4 -2 9" -2
check "min of positive values" min "3 5 7" 3
check "max of negative values" max "-3 -5 -7" -3

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
