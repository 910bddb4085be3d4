#!/usr/bin/env bash
# Install cloudvamp into an OpenNebula front-end.
#
#   ./install.sh [options]
#
# What it does (idempotent; run it again after an upgrade):
#   remotes   <prefix>/lib/python/cloudvamp_host/          host library (stdlib + libvirt only)
#             <prefix>/im/cloudvamp.d -> kvm.d              monitord client, as for kvm
#             <prefix>/im/cloudvamp-probes.d/               real dirs: kvm probes linked, ours added
#             <prefix>/etc/im/cloudvamp-probes.d -> kvm-probes.d  the kvm probes' config (pci.conf...)
#             <prefix>/vmm/cloudvamp/                       kvm actions linked, ours: deploy, resize, migrate
#             <prefix>/etc/vmm/cloudvamp/cloudvamprc        host settings (kept if already there)
#   package   python venv with cvem (pip install of this source tree) at --venv
#   service   <systemd-dir>/cloudvamp-cvem.service running `cvem --config <etc>/cvem.conf run`
#             as --service-user, state in /var/lib/one/cvem (systemd StateDirectory)
#             <etc>/cvem.conf (sample, kept when present): root:<service group> 0640
#   config    IM_MAD block in <etc>/monitord.conf, VM_MAD block (LIVE_RESIZE="yes") in <etc>/oned.conf
#
# Options:
#   --prefix DIR       OpenNebula remotes (default /var/lib/one/remotes)
#   --etc-dir DIR      OpenNebula configuration dir (default /etc/one)
#   --venv DIR         venv for the cvem package (default /opt/cloudvamp/venv)
#   --systemd-dir DIR  where the unit goes (default /etc/systemd/system)
#   --service-user U   the user the unit runs cvem as (default oneadmin); the config is
#                      made readable by its group
#   --no-package       do not create the venv / install cvem (remotes and config only)
#   --pip-options STR  extra options for pip install (e.g. "--no-deps" for an offline test)
#   --dry-run          print what would be done, change nothing
#   --print-config     only print the monitord.conf / oned.conf snippets
#   --uninstall        remove everything install.sh added (venv only if it created it)
#   -h, --help
# Environment: PYTHON, the python3 the venv is made with (default: the first on PATH; if the
# service user cannot run that one, /usr/bin/python3, or an error when PYTHON was given).
set -euo pipefail

SRC=$(cd "$(dirname "$0")" && pwd)
PREFIX=/var/lib/one/remotes
ETC_DIR=/etc/one
VENV=/opt/cloudvamp/venv
SYSTEMD_DIR=/etc/systemd/system
PYTHON_GIVEN=${PYTHON:-}
PYTHON=${PYTHON:-python3}
SERVICE_USER=oneadmin
PIP_OPTIONS=""
WITH_PACKAGE=1
DRY_RUN=0
MODE=install

UNIT_NAME=cloudvamp-cvem.service
BEGIN_MARK="# BEGIN cloudvamp (managed by cloudvamp install.sh; remove with install.sh --uninstall)"
END_MARK="# END cloudvamp"
VENV_MARK=.cloudvamp-venv
OUR_ACTIONS="deploy resize migrate"

die() { echo "install.sh: error: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX=${2:?--prefix needs a directory}; shift 2 ;;
    --prefix=*) PREFIX=${1#*=}; shift ;;
    --etc-dir) ETC_DIR=${2:?--etc-dir needs a directory}; shift 2 ;;
    --etc-dir=*) ETC_DIR=${1#*=}; shift ;;
    --venv) VENV=${2:?--venv needs a directory}; shift 2 ;;
    --venv=*) VENV=${1#*=}; shift ;;
    --systemd-dir) SYSTEMD_DIR=${2:?--systemd-dir needs a directory}; shift 2 ;;
    --systemd-dir=*) SYSTEMD_DIR=${1#*=}; shift ;;
    --service-user) SERVICE_USER=${2:?--service-user needs a user name}; shift 2 ;;
    --service-user=*) SERVICE_USER=${1#*=}; shift ;;
    --pip-options) PIP_OPTIONS=${2:-}; shift 2 ;;
    --pip-options=*) PIP_OPTIONS=${1#*=}; shift ;;
    --no-package) WITH_PACKAGE=0; shift ;;
    --dry-run|-n) DRY_RUN=1; shift ;;
    --print-config) MODE=print-config; shift ;;
    --uninstall) MODE=uninstall; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

CONFIG_FILE=$ETC_DIR/cvem.conf

im_mad_block() {
  cat <<CONF
IM_MAD = [
    NAME          = "cloudvamp",
    SUNSTONE_NAME = "CloudVAMP (KVM)",
    EXECUTABLE    = "one_im_ssh",
    ARGUMENTS     = "-r 3 -t 15 -w 90 cloudvamp",
    THREADS       = 0
]
CONF
}

vm_mad_block() {
  cat <<CONF
VM_MAD = [
    NAME              = "cloudvamp",
    SUNSTONE_NAME     = "CloudVAMP (KVM)",
    EXECUTABLE        = "one_vmm_exec",
    ARGUMENTS         = "-t 15 -r 0 cloudvamp -p",
    DEFAULT           = "vmm_exec/vmm_exec_kvm.conf",
    TYPE              = "kvm",
    KEEP_SNAPSHOTS    = "yes",
    LIVE_RESIZE       = "yes",
    SUPPORT_SHAREABLE = "yes"
]
CONF
}

# --- primitive operations: each prints itself in --dry-run and does nothing else ----------
run() {
  if [ $DRY_RUN = 1 ]; then echo "would run: $*"; else "$@"; fi
}

# write_file PATH MODE < content
write_file() {
  local path=$1 mode=$2 content
  content=$(cat)
  if [ -f "$path" ] && [ "$(cat "$path")" = "$content" ]; then return 0; fi
  if [ $DRY_RUN = 1 ]; then echo "would write: $path"; return 0; fi
  mkdir -p "$(dirname "$path")"
  printf '%s\n' "$content" > "$path.cloudvamp-new"
  chmod "$mode" "$path.cloudvamp-new"
  mv -f "$path.cloudvamp-new" "$path"
}

# link TARGET LINKNAME: (re)create a relative symlink unless it is already right.
link() {
  local target=$1 name=$2
  if [ -L "$name" ] && [ "$(readlink "$name")" = "$target" ]; then return 0; fi
  if [ -e "$name" ] && [ ! -L "$name" ]; then die "$name exists and is not a symlink; not replacing it"; fi
  run ln -sfn "$target" "$name"
}

make_dir() {
  if [ -d "$1" ] && [ ! -L "$1" ]; then return 0; fi
  if [ -L "$1" ]; then run rm -f "$1"; fi
  run mkdir -p "$1"
}

# remove_block FILE: drop our marked block from a config file.
remove_block() {
  local file=$1
  [ -f "$file" ] && grep -qF "$BEGIN_MARK" "$file" || return 0
  if [ $DRY_RUN = 1 ]; then echo "would remove the cloudvamp block from $file"; return 0; fi
  # drop the block and the blank line put_block wrote before it
  awk -v b="$BEGIN_MARK" -v e="$END_MARK" '
    $0==b { skip=1; held=0; next }
    skip { if ($0==e) skip=0; next }
    held { print ""; held=0 }
    $0=="" { held=1; next }
    { print }
    END { if (held) print "" }' "$file" > "$file.cloudvamp-new"
  cat "$file.cloudvamp-new" > "$file"   # keep owner and mode of the original
  rm -f "$file.cloudvamp-new"
}

# put_block FILE: append (or refresh) our marked block, read from stdin.
put_block() {
  local file=$1 block current
  block=$(cat)
  if [ ! -f "$file" ]; then
    say "warning: $file not found; add this yourself:"; printf '%s\n' "$block"; return 0
  fi
  current=$(awk -v b="$BEGIN_MARK" -v e="$END_MARK" '$0==b{on=1;next} on&&$0==e{on=0} on' "$file")
  if grep -qF "$BEGIN_MARK" "$file" && [ "$current" = "$block" ]; then return 0; fi
  remove_block "$file"
  if [ $DRY_RUN = 1 ]; then echo "would add to $file:"; printf '%s\n' "$block" | sed 's/^/    /'; return 0; fi
  printf '\n%s\n%s\n%s\n' "$BEGIN_MARK" "$block" "$END_MARK" >> "$file"
}

# --- the parts -----------------------------------------------------------------------------
check_opennebula_tree() {
  [ -d "$PREFIX" ] || die "$PREFIX does not exist (is OpenNebula installed? use --prefix)"
  [ -d "$PREFIX/vmm/kvm" ] || die "$PREFIX/vmm/kvm not found: cloudvamp wraps the stock kvm driver"
  [ -d "$PREFIX/im/kvm-probes.d" ] || die "$PREFIX/im/kvm-probes.d not found: cloudvamp reuses the kvm probes"
  [ -e "$PREFIX/im/kvm.d" ] || die "$PREFIX/im/kvm.d not found: cloudvamp reuses the kvm monitord client"
}

install_host_library() {
  local dest=$PREFIX/lib/python/cloudvamp_host f
  make_dir "$dest"
  for f in "$SRC"/remotes/lib/python/cloudvamp_host/*.py; do
    write_file "$dest/$(basename "$f")" 644 < "$f"
  done
  # drop modules that an older version shipped and this one does not
  for f in "$dest"/*.py; do
    [ -e "$f" ] || continue
    [ -f "$SRC/remotes/lib/python/cloudvamp_host/$(basename "$f")" ] || run rm -f "$f"
  done
  if [ -f "$PREFIX/etc/vmm/cloudvamp/cloudvamprc" ]; then
    say "keeping existing $PREFIX/etc/vmm/cloudvamp/cloudvamprc"
  else
    write_file "$PREFIX/etc/vmm/cloudvamp/cloudvamprc" 644 < "$SRC/remotes/etc/vmm/cloudvamp/cloudvamprc"
  fi
}

install_vmm() {
  local dir=$PREFIX/vmm/cloudvamp entry name
  make_dir "$dir"
  for entry in "$PREFIX"/vmm/kvm/*; do
    name=$(basename "$entry")
    case " $OUR_ACTIONS " in *" $name "*) continue ;; esac
    link "../kvm/$name" "$dir/$name"
  done
  for name in $OUR_ACTIONS; do
    write_file "$dir/$name" 755 < "$SRC/remotes/vmm/cloudvamp/$name"
  done
  # links to kvm actions that no longer exist (OpenNebula upgrade)
  for entry in "$dir"/*; do
    if [ -L "$entry" ] && [ ! -e "$entry" ]; then run rm -f "$entry"; fi
  done
}

install_im() {
  local probes=$PREFIX/im/cloudvamp-probes.d kvm=$PREFIX/im/kvm-probes.d entry sub name ours
  link kvm.d "$PREFIX/im/cloudvamp.d"
  # the kvm probes read their config from etc/im/<IM_MAD>-probes.d/ (pci.rb fails without
  # pci.conf, and a failing host/system probe puts the host in ERROR): share kvm's
  if [ -d "$PREFIX/etc/im/kvm-probes.d" ]; then
    link kvm-probes.d "$PREFIX/etc/im/cloudvamp-probes.d"
  fi
  make_dir "$probes"
  for entry in "$kvm"/*; do
    name=$(basename "$entry")
    if [ ! -d "$entry" ]; then link "../kvm-probes.d/$name" "$probes/$name"; continue; fi
    make_dir "$probes/$name"                          # host, vm
    for sub in "$entry"/*; do
      [ -d "$sub" ] || { link "../../kvm-probes.d/$name/$(basename "$sub")" "$probes/$name/$(basename "$sub")"; continue; }
      ours=$SRC/remotes/im/cloudvamp-probes.d/$name/$(basename "$sub")
      if [ -d "$ours" ]; then
        # a category we add to: real dir, the kvm probes linked one by one, plus ours
        make_dir "$probes/$name/$(basename "$sub")"
        for f in "$sub"/*; do
          [ -e "$f" ] || continue
          link "../../../kvm-probes.d/$name/$(basename "$sub")/$(basename "$f")" \
               "$probes/$name/$(basename "$sub")/$(basename "$f")"
        done
        for f in "$ours"/*; do
          write_file "$probes/$name/$(basename "$sub")/$(basename "$f")" 755 < "$f"
        done
      else
        link "../../kvm-probes.d/$name/$(basename "$sub")" "$probes/$name/$(basename "$sub")"
      fi
    done
  done
  # a category of ours the kvm tree lacks (e.g. no kvm-probes.d/vm/monitor): ours alone
  for ours in "$SRC"/remotes/im/cloudvamp-probes.d/*/*/; do
    sub=${ours%/}; sub=${sub#"$SRC"/remotes/im/cloudvamp-probes.d/}
    [ -d "$kvm/$sub" ] && continue
    say "note: $kvm/$sub does not exist; $probes/$sub gets cloudvamp's probes only"
    make_dir "$probes/$sub"
    for f in "$ours"*; do write_file "$probes/$sub/$(basename "$f")" 755 < "$f"; done
  done
  if [ $DRY_RUN = 0 ]; then   # never leave a host without its balloon figures silently
    for f in "$SRC"/remotes/im/cloudvamp-probes.d/*/*/*; do
      name=${f#"$SRC"/remotes/im/cloudvamp-probes.d/}
      [ -f "$probes/$name" ] && [ -x "$probes/$name" ] || die "probe $probes/$name was not installed"
    done
  fi
  [ -d "$probes" ] || return 0
  for entry in $(cd "$probes" && find . -type l); do   # links left dangling by an upgrade
    [ -e "$probes/$entry" ] || run rm -f "$probes/$entry"
  done
}

# Whether $SERVICE_USER can run interpreter $1 (with its standard library): a venv only links
# to the python it was made with, so a python under root's home (pyenv: /root is 0700) makes a
# venv the unit's user cannot start ("Permission denied"). Unknowable unless root and the user
# exists: then assumed yes.
runs_as_service_user() {
  [ "$(id -u)" = 0 ] && id "$SERVICE_USER" >/dev/null 2>&1 && command -v runuser >/dev/null || return 0
  (cd / && runuser -u "$SERVICE_USER" -- "$1" -c "import sys" >/dev/null 2>&1)
}

# Picks the interpreter for a new venv before anything is changed: $PYTHON if the service user
# can run it; else, when PYTHON was not given, the system's /usr/bin/python3; else one line, exit 1.
choose_python() {
  [ $WITH_PACKAGE = 1 ] || return 0
  if [ -x "$VENV/bin/python" ]; then
    runs_as_service_user "$VENV/bin/python" \
      || die "$VENV/bin/python cannot be run by the service user $SERVICE_USER (its python is not readable or executable by that user): remove $VENV and run install.sh again with PYTHON=/usr/bin/python3"
    return 0
  fi
  local exe
  exe=$("$PYTHON" -c "import sys; print(sys.executable)" 2>/dev/null) || die "no python3 to build the venv with ($PYTHON does not run): install python3 and python3-venv, or set PYTHON"
  runs_as_service_user "$exe" && return 0
  if [ -z "$PYTHON_GIVEN" ] && [ -x /usr/bin/python3 ] && runs_as_service_user /usr/bin/python3; then
    say "$exe (python3 first on PATH) cannot be run by the service user $SERVICE_USER: building the venv with /usr/bin/python3"
    PYTHON=/usr/bin/python3
    return 0
  fi
  die "$exe cannot be run by the service user $SERVICE_USER (not readable or executable by that user, e.g. a pyenv python under /root): set PYTHON to a python3 that user can run, e.g. PYTHON=/usr/bin/python3"
}

install_package() {
  if [ $WITH_PACKAGE = 0 ]; then say "skipping the cvem package (--no-package)"; return 0; fi
  if [ ! -x "$VENV/bin/python" ]; then
    run mkdir -p "$(dirname "$VENV")"
    run "$PYTHON" -m venv "$VENV"
    if [ $DRY_RUN = 0 ]; then : > "$VENV/$VENV_MARK"; fi
  fi
  # shellcheck disable=SC2086  # PIP_OPTIONS is a list of options
  run "$VENV/bin/pip" install -q $PIP_OPTIONS "$SRC"
}

service_group() {
  id -gn "$SERVICE_USER" 2>/dev/null || echo "$SERVICE_USER"
}

install_service() {
  sed -e "s|@CVEM@|$VENV/bin/cvem|g" -e "s|@CONFIG@|$CONFIG_FILE|g" \
      -e "s|@USER@|$SERVICE_USER|g" -e "s|@GROUP@|$(service_group)|g" \
    "$SRC/etc/systemd/cloudvamp-cvem.service.in" | write_file "$SYSTEMD_DIR/$UNIT_NAME" 644
  if [ -f "$SRC/etc/cvem.conf" ] && [ ! -e "$CONFIG_FILE" ] && [ -d "$ETC_DIR" ]; then
    write_file "$CONFIG_FILE" 640 < "$SRC/etc/cvem.conf"
  fi
  config_readable_by_service
}

# The unit runs cvem as $SERVICE_USER: it must read its config (which may name secrets'
# files, so not world-readable): root:<service group> 0640, also for a config kept from
# an earlier install.
config_readable_by_service() {
  [ -f "$CONFIG_FILE" ] || [ $DRY_RUN = 1 ] || return 0
  if [ "$(id -u)" != 0 ]; then return 0; fi
  if ! id "$SERVICE_USER" >/dev/null 2>&1; then
    say "warning: user $SERVICE_USER does not exist: make $CONFIG_FILE readable by the user that runs cvem"
    return 0
  fi
  run chgrp "$(service_group)" "$CONFIG_FILE"
  run chmod g+r,o-rwx "$CONFIG_FILE"
}

install_config() {
  im_mad_block | put_block "$ETC_DIR/monitord.conf"
  vm_mad_block | put_block "$ETC_DIR/oned.conf"
}

set_ownership() {
  # OpenNebula's remotes belong to oneadmin; keep ours the same so `onehost sync` works.
  if [ "$(id -u)" = 0 ] && id oneadmin >/dev/null 2>&1; then
    run chown -h -R oneadmin:oneadmin "$PREFIX/lib/python/cloudvamp_host" "$PREFIX/etc/vmm/cloudvamp" \
      "$PREFIX/vmm/cloudvamp" "$PREFIX/im/cloudvamp-probes.d" "$PREFIX/im/cloudvamp.d"
    if [ -L "$PREFIX/etc/im/cloudvamp-probes.d" ]; then
      run chown -h oneadmin:oneadmin "$PREFIX/etc/im/cloudvamp-probes.d"
    fi
  fi
}

next_steps() {
  cat <<STEPS

cloudvamp installed$([ $DRY_RUN = 1 ] && echo " (dry run: nothing was changed)"). Next steps:
  1. Restart OpenNebula so oned and monitord read the new VM_MAD/IM_MAD:
       systemctl restart opennebula
  2. Copy the remotes to the hosts (hosts need python3 and python3-libvirt):
       onehost sync -f
  3. Create hosts with the cloudvamp drivers (or change IM_MAD/VM_MAD of existing ones):
       onehost create <host> -i cloudvamp -v cloudvamp [--cluster <cluster>]
  4. Give VM templates room to grow and a ballooned memory, and a OneGate token for the guest:
       MEMORY_MAX="<max MiB>"   MEMORY_RESIZE_MODE="BALLOONING"
       CONTEXT=[ TOKEN="YES", NETWORK="YES", ... ]
  5. Configure and start the engine:
       edit $CONFIG_FILE
       systemctl daemon-reload && systemctl enable --now ${UNIT_NAME%.service}
  Live disk snapshots: add cloudvamp-<tm> pairs (e.g. cloudvamp-qcow2) to LIVE_DISK_SNAPSHOTS
  in $ETC_DIR/vmm_execrc if you use them with the kvm driver.
  Balloon safety net: the cloudvamp deploy gives every new VM's virtio balloon deflate-on-OOM
  (the guest takes memory back instead of OOM-killing), free page reporting (freed guest memory
  goes back to the host) and a statistics period. Needs QEMU >= 5.1 and libvirt >= 6.9 on hosts
  (older: deployed unchanged) and guests with virtio_balloon (free page reporting: Linux >= 5.7).
  Running VMs get them at their next deploy. Turn each off per host in
  $PREFIX/etc/vmm/cloudvamp/cloudvamprc (CLOUDVAMP_AUTODEFLATE=no, CLOUDVAMP_FREE_PAGE_REPORTING=no,
  CLOUDVAMP_DEPLOY_STATS_PERIOD=no; then onehost sync -f) or per VM in its template
  (CLOUDVAMP_AUTODEFLATE="NO", ...). See docs/balloon-safety.md.
STEPS
}

uninstall() {
  local f
  run rm -rf "$PREFIX/vmm/cloudvamp" "$PREFIX/im/cloudvamp-probes.d" "$PREFIX/lib/python/cloudvamp_host"
  [ -L "$PREFIX/im/cloudvamp.d" ] && run rm -f "$PREFIX/im/cloudvamp.d"
  if [ -L "$PREFIX/etc/im/cloudvamp-probes.d" ]; then run rm -f "$PREFIX/etc/im/cloudvamp-probes.d"; fi
  f=$PREFIX/etc/vmm/cloudvamp/cloudvamprc
  if [ -f "$f" ] && ! cmp -s "$f" "$SRC/remotes/etc/vmm/cloudvamp/cloudvamprc"; then
    say "keeping $f (it was edited)"
  else
    run rm -rf "$PREFIX/etc/vmm/cloudvamp"
  fi
  for f in "$PREFIX/lib/python" "$PREFIX/lib"; do   # only if we left them empty
    if [ -d "$f" ] && [ -z "$(ls -A "$f")" ]; then run rmdir "$f"; fi
  done
  remove_block "$ETC_DIR/monitord.conf"
  remove_block "$ETC_DIR/oned.conf"
  [ -f "$SYSTEMD_DIR/$UNIT_NAME" ] && run rm -f "$SYSTEMD_DIR/$UNIT_NAME"
  if [ -f "$CONFIG_FILE" ] && [ -f "$SRC/etc/cvem.conf" ]; then
    if cmp -s "$CONFIG_FILE" "$SRC/etc/cvem.conf"; then run rm -f "$CONFIG_FILE"
    else say "keeping $CONFIG_FILE (it was edited)"; fi
  fi
  if [ -f "$VENV/$VENV_MARK" ]; then run rm -rf "$VENV"
  elif [ -d "$VENV" ]; then say "keeping $VENV (not created by install.sh)"; fi
  say "cloudvamp removed$([ $DRY_RUN = 1 ] && echo " (dry run: nothing was changed)"). Restart OpenNebula, move hosts back to -i kvm -v kvm, then onehost sync -f."
}

case $MODE in
  print-config)
    echo "# add to $ETC_DIR/monitord.conf"; im_mad_block; echo
    echo "# add to $ETC_DIR/oned.conf"; vm_mad_block
    ;;
  uninstall)
    uninstall
    ;;
  install)
    check_opennebula_tree
    choose_python
    install_host_library
    install_vmm
    install_im
    install_package
    install_service
    install_config
    set_ownership
    next_steps
    ;;
esac
