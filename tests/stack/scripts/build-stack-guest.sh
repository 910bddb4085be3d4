#!/bin/bash
# The stack tier's guest: the lab guest (tests/lab/scripts/build-guest.sh: Debian kernel,
# busybox, virtio_balloon, MEMINFO on the serial console every 2 s) plus a way to change
# what it uses from outside: lines typed on its PS/2 keyboard (virsh send-key / HMP
# sendkey, which follows the VM across a live migration) are read from /dev/tty1:
#   s<ENTER>  fill SURGE_MIB more MiB of tmpfs (a memory surge)   r<ENTER>  release it
# usage: build-stack-guest.sh LAB_GUEST_DIR OUT_DIR [SURGE_MIB]
set -euo pipefail
SRC=$1; OUT=$2; SURGE_MIB=${3:-200}
mkdir -p "$OUT"; rm -rf "$OUT/rootfs"; mkdir -p "$OUT/rootfs"
cp "$SRC/vmlinuz" "$OUT/vmlinuz"
(cd "$OUT/rootfs" && gzip -dc "$SRC/initrd.gz" | busybox cpio -i -d 2>/dev/null)
cat > "$OUT/rootfs/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_balloon virtio_console; do
  insmod /lib/modules/\$m.ko || echo "INSMOD FAIL \$m"
done
echo "BOOTED uptime=\$(cut -d' ' -f1 /proc/uptime)"
mount -t tmpfs -o size=400m tmpfs /tmp && dd if=/dev/zero of=/tmp/fill bs=1M count=64 2>/dev/null
(
  while true; do
    read -r cmd < /dev/tty1 || { sleep 1; continue; }
    case "\$cmd" in
      s) dd if=/dev/zero of=/tmp/surge bs=1M count=$SURGE_MIB 2>/dev/null; echo "SURGE on" ;;
      r) rm -f /tmp/surge; echo "SURGE off" ;;
    esac
  done
) &
i=0
while true; do
  set -- \$(grep -E '^(MemTotal|MemFree|MemAvailable):' /proc/meminfo | awk '{print \$2}')
  echo "MEMINFO t=\$(cut -d' ' -f1 /proc/uptime) i=\$i MemTotal=\$1 MemFree=\$2 MemAvailable=\$3"
  i=\$((i+1)); sleep 2
done
INIT
chmod +x "$OUT/rootfs/init"
(cd "$OUT/rootfs" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 > ../initrd.gz)
rm -rf "$OUT/rootfs"
