#!/usr/bin/env bash
# Installs the Debian packages of the fault matrix's peers (nginx-light, tinyproxy, nghttp2-server)
# if any is missing. Debian starts nginx and tinyproxy as services on install (0.0.0.0:80 and :8888)
# unless /usr/sbin/policy-rc.d forbids it: a temporary one that exits 101 is put in place for the
# install when the machine has none, so nothing ever listens beyond what the tests start on 127.0.0.1.
set -euo pipefail
packages=("$@")
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages for the fault matrix: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
guard=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    guard=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$guard" >/dev/null
    $sudo chmod 755 "$guard"
fi
cleanup() { if [ -n "$guard" ]; then $sudo rm -f "$guard"; fi; }
trap cleanup EXIT
# apt's lock may be held by another install: retry for a while.
for try in 1 2 3 4 5 6 7 8 9 10; do
    if $sudo apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
        exit 0
    fi
    echo "apt-get failed (try $try), retrying in 10 s" >&2
    sleep 10
done
exit 1
