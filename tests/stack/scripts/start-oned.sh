#!/bin/bash
# (Re)start the test bed's oned (which starts monitord, the scheduler and the drivers) in a
# private mount namespace where /etc/hosts names the lab hosts (nodeA, nodeB on their front
# veths) and /etc/ssh/ssh_config gives ssh, scp and rsync the test-made key: oned's drivers run
# `ssh <host>` as the user running oned. Nothing outside this process tree sees the mounts.
# Records the pid in $PREFIX/run/oned.pid the way the test bed's start.sh does (stop.sh works).
# usage: start-oned.sh PREFIX STACKDIR
set -eu
PREFIX=$1; STACK=$2
INST=$PREFIX/one
. "$PREFIX/env.sh"
mkdir -p "$INST/var/vms"
rm -f "$INST/var/lock/.lock"
( cd "$INST/var" && exec unshare -m --propagation private /bin/sh -c "
    mount --bind $STACK/front_hosts /etc/hosts &&
    mount --bind $STACK/ssh_config /etc/ssh/ssh_config &&
    exec setsid $INST/bin/oned -f" > "$INST/var/oned.stdout" 2>&1 ) &
echo $! > "$PREFIX/run/oned.pid"
for _ in $(seq 60); do
  python3 - <<PY 2>/dev/null && exit 0
import xmlrpc.client, sys
r = xmlrpc.client.ServerProxy("$ONE_XMLRPC").one.system.version(open("$ONE_AUTH").read().strip())
sys.exit(0 if r[0] else 1)
PY
  kill -0 "$(cat "$PREFIX/run/oned.pid")" 2>/dev/null || { echo "oned died:"; tail -n 20 "$INST/var/oned.log" "$INST/var/oned.stdout"; exit 1; }
  sleep 1
done
echo "oned did not answer within 60 s"; exit 1
