#!/bin/bash
# (adapted from shared/lab-recipes/build-guest.sh; the lab fixture caches its output)
# Build the tiny test guest: Debian kernel + busybox initramfs that loads virtio_balloon and
# prints MemTotal/MemFree/MemAvailable to the serial console every 2 s.
# Needs: busybox-static, network access to Debian's apt repo (apt-get download).
# Output: $OUT/vmlinuz, $OUT/initrd.gz
set -euo pipefail
OUT=${1:?usage: build-guest.sh OUTDIR}
mkdir -p "$OUT"; cd "$OUT"
KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
KVER=${KPKG#linux-image-}
[ -f "$KPKG.deb" ] || { apt-get download "$KPKG" 2>/dev/null; mv ${KPKG}_*.deb "$KPKG.deb"; }
rm -rf kx root; mkdir -p kx root/{bin,proc,sys,dev,tmp,lib/modules}
M=lib/modules/$KVER/kernel
dpkg-deb --fsys-tarfile "$KPKG.deb" | tar -x -C kx --wildcards "./boot/vmlinuz-$KVER" \
  "./$M/drivers/virtio/virtio*.ko" "./$M/drivers/char/virtio_console.ko"
cp kx/boot/vmlinuz-$KVER vmlinuz
cp kx/$M/drivers/virtio/{virtio_ring,virtio,virtio_pci_modern_dev,virtio_pci_legacy_dev,virtio_pci,virtio_balloon}.ko \
   kx/$M/drivers/char/virtio_console.ko root/lib/modules/
cp /bin/busybox root/bin/busybox
cat > root/init <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_balloon virtio_console; do
  insmod /lib/modules/$m.ko || echo "INSMOD FAIL $m"
done
echo "BOOTED uptime=$(cut -d' ' -f1 /proc/uptime) balloon=$(ls /sys/bus/virtio/drivers/virtio_balloon 2>/dev/null | grep virtio | tr '\n' ,)"
mount -t tmpfs -o size=100m tmpfs /tmp && dd if=/dev/zero of=/tmp/fill bs=1M count=64 2>/dev/null
# Memory hog for the deflate/free-page lab tests, asked for on the kernel command line:
#   cloudvamp.hog=MIB cloudvamp.hog_below=KB cloudvamp.hold=S
# Once MemAvailable is below KB (the host inflated the balloon), wait 3 s, then take MIB of
# anonymous memory in 32 MiB parts (each the buffer of one dd, filled from /dev/zero; parts
# pass the kernel's overcommit check where one big allocation would be refused outright),
# hold them all together S seconds and free them. Steps print as HOG lines on the console.
hog=; below=0; hold=20
for arg in $(cat /proc/cmdline); do
  case $arg in
    cloudvamp.hog=*) hog=${arg#*=} ;; cloudvamp.hog_below=*) below=${arg#*=} ;;
    cloudvamp.hold=*) hold=${arg#*=} ;;
  esac
done
uptime_s() { cut -d' ' -f1 /proc/uptime; }
if [ -n "$hog" ]; then
  (
    while [ "$(awk '/^MemAvailable:/{print $2}' /proc/meminfo)" -gt "$below" ]; do sleep 1; done
    sleep 3   # let the host's balloon change finish first
    echo "HOG START t=$(uptime_s) mib=$hog"
    parts=$(( (hog + 31) / 32 )); part=0
    while [ $part -lt $parts ]; do
      dd if=/dev/zero bs=32M count=1 2>/dev/null | {
        if [ "$(head -c 1 | wc -c)" = 1 ]; then
          echo "HOG HELD part=$part t=$(uptime_s)"; : > /tmp/hog.$part
          # all parts are held together: wait until every part is held or lost
          while [ "$(ls /tmp/hog.* | wc -l)" -lt $parts ]; do sleep 1; done
          sleep $hold
        else
          echo "HOG LOST part=$part t=$(uptime_s)"; : > /tmp/hog.$part
        fi
      } &
      part=$((part + 1))
    done
    wait
    sleep 1
    echo "HOG END t=$(uptime_s) oom_kills=$(dmesg | grep -c 'Killed process')"
  ) &
fi
i=0
while true; do
  set -- $(grep -E '^(MemTotal|MemFree|MemAvailable):' /proc/meminfo | awk '{print $2}')
  echo "MEMINFO t=$(cut -d' ' -f1 /proc/uptime) i=$i MemTotal=$1 MemFree=$2 MemAvailable=$3"
  i=$((i+1)); sleep 2
done
INIT
chmod +x root/init
(cd root && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 > ../initrd.gz)
rm -rf kx
ls -la vmlinuz initrd.gz
