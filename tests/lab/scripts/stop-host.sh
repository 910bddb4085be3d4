#!/bin/bash
# Stop the libvirtd started by start-nshost.sh (by its recorded pid only), then any qemu it
# left behind (by the pid files libvirt wrote for our domains only).
# usage: stop-host.sh LABDIR NAME
H=$1/hosts/$2
P=$(cat $H/daemon.pid 2>/dev/null) && {
  kill $P 2>/dev/null; for i in $(seq 1 50); do kill -0 $P 2>/dev/null || break; sleep 0.1; done
  kill -9 $P 2>/dev/null; rm -f $H/daemon.pid; }
for f in $H/run/qemu/*.pid; do
  [ -f "$f" ] || continue
  Q=$(cat "$f")
  grep -q qemu "/proc/$Q/cmdline" 2>/dev/null || continue   # stale pid file: not ours any more
  kill $Q 2>/dev/null; sleep 0.2; kill -9 $Q 2>/dev/null
done; true
