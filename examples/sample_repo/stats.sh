#!/bin/sh
# stats.sh: summary statistics of the numbers read from stdin, one per line.
# usage: sh stats.sh count|sum|mean|min|max < numbers.txt
set -eu
op=${1:?usage: stats.sh count|sum|mean|min|max}

awk -v op="$op" '
BEGIN { min = 0; max = 0 }
{ n++; sum += $1; if ($1 < min) min = $1; if ($1 > max) max = $1 }
END {
    if (n == 0) { print "stats: no input" > "/dev/stderr"; exit 1 }
    if (op == "count") print n
    else if (op == "sum") print sum
    else if (op == "mean") print sum / n
    else if (op == "min") print min
    else if (op == "max") print max
    else { print "stats: unknown operation " op > "/dev/stderr"; exit 2 }
}'
