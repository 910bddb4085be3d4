#!/bin/bash
# A hand-run libvirtd "host" (no systemd) inside network namespace NETNS, with its own
# hostname (UTS ns), /etc/hosts and libvirt state dirs bind-mounted in a private mount ns,
# listening on tcp IP:16509 (auth none, reachable only inside the lab namespaces).
# Adapted from shared/lab-recipes/start-nshost.sh.
# usage: start-nshost.sh LABDIR NAME NETNS IP UUIDN
set -eu
. "$(dirname "$0")/libvirt-host-conf.sh"
LAB=$1; NAME=$2; NS=$3; IP=$4; N=$5
H=$LAB/hosts/$NAME
mkdir -p $H/etc/qemu $H/run $H/lib $H/log $H/cache
mkdir -p /etc/libvirt /run/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt
write_libvirt_host_conf $H/etc "$IP" "00000000-0000-4000-8000-0000000000$N"
cat > $H/hosts <<CONF
127.0.0.1 localhost
10.254.0.1 nodeA
10.254.0.2 nodeB
CONF
nohup ip netns exec $NS unshare -m -u --propagation private /bin/sh -c "
  hostname $NAME &&
  mount --bind $H/hosts /etc/hosts &&
  mount --bind $H/etc /etc/libvirt &&
  mount --bind $H/run /run/libvirt &&
  mount --bind $H/lib /var/lib/libvirt &&
  mount --bind $H/log /var/log/libvirt &&
  mount --bind $H/cache /var/cache/libvirt &&
  exec /usr/sbin/libvirtd --listen -f /etc/libvirt/libvirtd.conf -p /run/libvirt/libvirtd.pid" \
  > $H/daemon.out 2>&1 &
echo $! > $H/daemon.pid
wait_for_libvirt_socket $H $NAME 100
