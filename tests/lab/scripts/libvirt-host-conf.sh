# Sourced by the lab's and the stack's host scripts: the config of a hand-run libvirtd
# "host" that listens on tcp LISTEN_IP:16509 with no auth (reachable only inside the lab
# namespaces), and of its qemu, run as root with no cgroups, namespaces or security driver
# (a TCG guest in a network namespace needs none of them).
# usage: write_libvirt_host_conf ETC_DIR LISTEN_IP HOST_UUID
write_libvirt_host_conf() {
  local etc=$1 ip=$2 uuid=$3
  mkdir -p "$etc/qemu"
  cat > "$etc/libvirtd.conf" <<CONF
unix_sock_group = "root"
unix_sock_rw_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
listen_tls = 0
listen_tcp = 1
listen_addr = "$ip"
auth_tcp = "none"
host_uuid = "$uuid"
log_level = 3
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
CONF
  cat > "$etc/qemu.conf" <<CONF
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
migration_address = "$ip"
migration_host = "$ip"
CONF
}

# usage: wait_for_libvirt_socket HOST_DIR NAME TENTHS (TENTHS: how many 0.1 s tries)
wait_for_libvirt_socket() {
  local h=$1 name=$2 tries=$3 i
  for i in $(seq 1 "$tries"); do [ -S "$h/run/libvirt-sock" ] && return 0; sleep 0.1; done
  echo "libvirtd $name did not start"; cat "$h/daemon.out"; return 1
}
