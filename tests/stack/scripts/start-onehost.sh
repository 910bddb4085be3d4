#!/bin/bash
# A lab host OpenNebula can use as a KVM host: inside network namespace NETNS, in one private
# mount + UTS namespace (hostname NAME), a hand-run libvirtd (listening on tcp MIG_IP:16509,
# auth none, reachable only from the other lab host) and an sshd on FRONT_IP and MIG_IP:22
# that lets in the test-made key as root (oned of the test bed runs as root, and its drivers
# ssh as the user running them). Only this namespace sees its bind mounts: /etc/hosts (lab
# names), /etc/ssh/ssh_config (the test-made client key, for host-to-host ssh), libvirt's
# state dirs, the login user's ~/.bashrc (a plain login environment: python3 is the system one, with
# python3-libvirt, as on an OpenNebula node), /var/tmp/one_db (the monitoring client's state) and the remotes directory
# REMOTE_DIR (where oned copies the drivers), so two hosts on one filesystem stay apart.
# usage: start-onehost.sh STACKDIR NAME NETNS FRONT_IP MIG_IP UUIDN REMOTE_DIR
set -eu
. "$(dirname "$0")/../../lab/scripts/libvirt-host-conf.sh"
STACK=$1; NAME=$2; NS=$3; FRONT_IP=$4; MIG_IP=$5; N=$6; REMOTE_DIR=$7
H=$STACK/hosts/$NAME
LOGIN_HOME=$(getent passwd "$(id -un)" | cut -d: -f6)   # sshd logs the key in as this user
mkdir -p $H/etc/qemu $H/run $H/lib $H/log $H/cache $H/one_db $H/remote-dir
mkdir -p /etc/libvirt /run/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt \
         /var/tmp/one_db /run/sshd "$REMOTE_DIR"
write_libvirt_host_conf $H/etc "$MIG_IP" "00000000-0000-4000-8000-0000000001$N"
cat > $H/hosts <<CONF
127.0.0.1 localhost
10.253.1.11 nodeA
10.253.1.12 nodeB
CONF
[ -f $H/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -C "$NAME" -f $H/ssh_host_ed25519_key
cat > $H/sshd_config <<CONF
ListenAddress $FRONT_IP
ListenAddress $MIG_IP
HostKey $H/ssh_host_ed25519_key
PidFile $H/sshd.pid
AuthorizedKeysFile $STACK/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxStartups 200
MaxSessions 200
Subsystem sftp /usr/lib/openssh/sftp-server
CONF
nohup ip netns exec $NS unshare -m -u --propagation private /bin/sh -c "
  hostname $NAME &&
  mount --bind $H/hosts /etc/hosts &&
  mount --bind $STACK/ssh_config /etc/ssh/ssh_config &&
  { [ ! -f $LOGIN_HOME/.bashrc ] || mount --bind $STACK/host_bashrc $LOGIN_HOME/.bashrc; } &&
  mount --bind $H/one_db /var/tmp/one_db &&
  mount --bind $H/remote-dir $REMOTE_DIR &&
  mount --bind $H/etc /etc/libvirt &&
  mount --bind $H/run /run/libvirt &&
  mount --bind $H/lib /var/lib/libvirt &&
  mount --bind $H/log /var/log/libvirt &&
  mount --bind $H/cache /var/cache/libvirt &&
  /usr/sbin/sshd -f $H/sshd_config -E $H/sshd.log &&
  exec /usr/sbin/libvirtd --listen -f /etc/libvirt/libvirtd.conf -p /run/libvirt/libvirtd.pid" \
  > $H/daemon.out 2>&1 &
echo $! > $H/daemon.pid
for i in $(seq 1 600); do [ -S $H/run/libvirt-sock ] && [ -s $H/sshd.pid ] && break; sleep 0.1; done
[ -S $H/run/libvirt-sock ] || { echo "libvirtd $NAME did not start"; cat $H/daemon.out; exit 1; }
[ -s $H/sshd.pid ] || { echo "sshd $NAME did not start"; cat $H/daemon.out $H/sshd.log; exit 1; }
