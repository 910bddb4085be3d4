#!/bin/bash
# Stop a host started by start-onehost.sh: its domains' qemu (by libvirt's pid files), every
# process left in its network namespace (sshd, sessions, the monitoring client: all started
# for this host), then libvirtd (by its recorded pid).
# usage: stop-onehost.sh STACKDIR NAME NETNS
H=$1/hosts/$2; NS=$3
for f in $H/run/qemu/*.pid; do
  [ -f "$f" ] || continue
  Q=$(cat "$f"); grep -q qemu "/proc/$Q/cmdline" 2>/dev/null && kill -9 "$Q" 2>/dev/null
done
P=$(cat $H/daemon.pid 2>/dev/null)
for pid in $(ip netns pids "$NS" 2>/dev/null); do
  [ "$pid" = "$P" ] || kill "$pid" 2>/dev/null
done
if [ -n "$P" ]; then
  kill $P 2>/dev/null; for i in $(seq 1 50); do kill -0 $P 2>/dev/null || break; sleep 0.1; done
  kill -9 $P 2>/dev/null; rm -f $H/daemon.pid
fi
sleep 0.2
for pid in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done; true
