#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: tests/pg/cluster.sh start|stop|restart|env [KEY]
#
# The cluster lives in /tmp/wafer-pg-<hash of KEY> (KEY: the build directory, default
# $WAFER_PG_KEY or $PWD), is
# owned by an unprivileged user (the caller, or `nobody` when run as root), listens on a unix
# socket in that directory only (no TCP), and runs with fsync off. `start` initialises it if
# needed, starts it and prints the conninfo on stdout; `env` prints the shell exports of
# WAFER_TEST_POSTGRES (conninfo) and WAFER_TEST_POSTGRES_CTL (this script's restart command).
set -euo pipefail

cmd=${1:-}
key=${2:-${WAFER_PG_KEY:-$PWD}}
hash=$(printf '%s' "$key" | sha1sum | cut -c1-12)
dir=/tmp/wafer-pg-$hash
data=$dir/data
log=$dir/server.log
port=5432 # only names the socket file (.s.PGSQL.5432) in $dir: listen_addresses is empty

bindir=${WAFER_PG_BINDIR:-}
if [ -z "$bindir" ]; then
    for v in 15 16 17 14 13; do
        if [ -x /usr/lib/postgresql/$v/bin/pg_ctl ]; then bindir=/usr/lib/postgresql/$v/bin; break; fi
    done
fi
if [ -z "$bindir" ] && command -v pg_ctl >/dev/null; then bindir=$(dirname "$(command -v pg_ctl)"); fi
if [ -z "$bindir" ]; then
    echo "cluster.sh: PostgreSQL server binaries not found (Debian: apt-get install postgresql)" >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    user=nobody
    as_user() { runuser -u "$user" -- "$@"; }
else
    user=$(id -un)
    as_user() { "$@"; }
fi

# The database superuser is "wafer" whoever runs the cluster (trust authentication, socket only),
# so the conninfo depends on KEY alone (tests/CMakeLists.txt computes the same one).
conninfo="host=$dir port=$port dbname=postgres user=wafer"

ctl() { as_user "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 60 "$@"; }

case "$cmd" in
start)
    if [ ! -f "$data/PG_VERSION" ]; then
        rm -rf "$dir"
        mkdir -p "$dir"
        chmod 700 "$dir"
        [ "$(id -u)" -eq 0 ] && chown "$user" "$dir"
        as_user "$bindir/initdb" -D "$data" -U wafer --auth=trust -E UTF8 --locale=C.UTF-8 \
            >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
        cat >>"$data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$dir'
port = $port
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 64MB
CONF
    fi
    if ! as_user "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        ctl start >/dev/null || { cat "$log" >&2; exit 1; }
    fi
    echo "$conninfo"
    ;;
stop)
    if [ -f "$data/PG_VERSION" ]; then
        as_user "$bindir/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
restart)
    ctl -m fast restart >/dev/null
    ;;
kill)   # stop without removing the cluster (tests: the server is down)
    ctl -m fast stop >/dev/null
    ;;
resume) # start an existing cluster again
    ctl start >/dev/null
    ;;
env)
    echo "export WAFER_TEST_POSTGRES='$conninfo'"
    # A command prefix: "$WAFER_TEST_POSTGRES_CTL restart" restarts this cluster.
    echo "export WAFER_TEST_POSTGRES_CTL='env WAFER_PG_KEY=$key $(readlink -f "$0")'"
    ;;
*)
    echo "usage: $0 start|stop|restart|kill|resume|env [KEY]" >&2
    exit 2
    ;;
esac
