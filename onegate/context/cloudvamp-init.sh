#!/bin/sh
# cloudvamp-init.sh: install and start the cloudvamp memory publisher in an OpenNebula guest.
#
# Run by one-context as an INIT_SCRIPTS entry (or from START_SCRIPT), as root, at every
# contextualisation; it is idempotent: files are replaced only when they changed and the
# publisher is restarted only then (or when it is not running).
#
#   VM template:  CONTEXT = [ TOKEN = "YES",
#                   FILES_DS = "$FILE[IMAGE=\"cloudvamp-publisher\"] $FILE[IMAGE=\"cloudvamp-init.sh\"]",
#                   INIT_SCRIPTS = "cloudvamp-init.sh" ]
#
# With systemd it installs /etc/systemd/system/cloudvamp-publisher.service; without it, a
# nohup'd restart loop with its pid in /var/run/cloudvamp-publisher.pid and its log in
# /var/log/cloudvamp-publisher.log. CLOUDVAMP_PUBLISHER="NO" in CONTEXT stops and disables it.
#
# Knobs for tests and unusual guests (environment):
#   CLOUDVAMP_DESTDIR        install under this root instead of /
#   CLOUDVAMP_PUBLISHER_SRC  the publisher file to install (default: found beside this script,
#                            in the current directory or on the context CD)
#   CLOUDVAMP_INIT_SYSTEM    systemd | none (default: detected)
#   CLOUDVAMP_PUBLISHER_ARGS extra arguments for the publisher (e.g. "--heartbeat 30")
set -u

DESTDIR="${CLOUDVAMP_DESTDIR:-}"
NAME=cloudvamp-publisher
SBIN_DIR="$DESTDIR/usr/local/sbin"
UNIT_DIR="$DESTDIR/etc/systemd/system"
UNIT_DROPIN_DIR="$UNIT_DIR/$NAME.service.d"
PID_FILE="$DESTDIR/var/run/$NAME.pid"
LOG_FILE="$DESTDIR/var/log/$NAME.log"
HERE=$(cd "$(dirname "$0")" 2>/dev/null && pwd)

log() { echo "cloudvamp-init: $*" >&2; }

# install_if_changed SRC DST MODE: exit status 0 when DST was (re)written, 1 when unchanged.
install_if_changed() {
  if [ -f "$2" ] && cmp -s "$1" "$2" 2>/dev/null; then
    return 1
  fi
  mkdir -p "$(dirname "$2")" || return 2
  cp "$1" "$2.new" && chmod "$3" "$2.new" && mv -f "$2.new" "$2"
  return 0
}

find_publisher() {
  for candidate in "${CLOUDVAMP_PUBLISHER_SRC:-}" "$HERE/$NAME" "$PWD/$NAME" \
      "${MOUNT_DIR:-/nonexistent}/$NAME" /mnt/$NAME /media/context/$NAME; do
    if [ -n "$candidate" ] && [ -f "$candidate" ]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

write_unit() {
  # Kept identical to onegate/context/cloudvamp-publisher.service (a test checks it), so
  # FILES_DS needs only the publisher and this script.
  cat <<'UNIT'
# cloudvamp in-guest memory publisher (installed by cloudvamp-init.sh from the context CD).
[Unit]
Description=cloudvamp: publish guest memory figures to OpenNebula OneGate
Wants=network-online.target
After=network-online.target one-context.service

[Service]
Type=simple
# Root only to read /var/run/one-context/one_env (mode 0400) and /proc.
ExecStart=/usr/local/sbin/cloudvamp-publisher
Restart=always
RestartSec=30
# Exit 2 is a configuration error (no endpoint or token): retrying every 30 s is pointless.
RestartPreventExitStatus=2
# Never compete with the guest's own work; be among the last victims of the OOM killer so
# cvem keeps hearing from a guest that is short of memory, but cap what we may use.
Nice=10
IOSchedulingClass=idle
OOMScoreAdjust=-100
MemoryMax=64M
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
UNIT
}

init_system() {
  if [ -n "${CLOUDVAMP_INIT_SYSTEM:-}" ]; then
    echo "$CLOUDVAMP_INIT_SYSTEM"
  elif [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    echo systemd
  else
    echo none
  fi
}

fallback_running_pid() {
  [ -f "$PID_FILE" ] || return 1
  pid=$(cat "$PID_FILE" 2>/dev/null)
  case "$pid" in ''|*[!0-9]*) return 1 ;; esac
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

fallback_stop() {
  if pid=$(fallback_running_pid); then
    kill "$pid" 2>/dev/null
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5 2>/dev/null || sleep 1
    done
  fi
  rm -f "$PID_FILE"
}

fallback_start() {
  mkdir -p "$(dirname "$PID_FILE")" "$(dirname "$LOG_FILE")"
  # The loop restarts the publisher if it ever dies (after 30 s, or 300 s after a
  # configuration error); TERM stops the loop and the publisher together.
  # shellcheck disable=SC2016
  nohup sh -c '
    trap "kill \$child 2>/dev/null; exit 0" TERM INT
    while :; do
      "$0" $1 & child=$!
      wait $child; rc=$?
      if [ $rc -eq 2 ]; then pause=300; else pause=30; fi
      sleep $pause & child=$!
      wait $child
    done' "$SBIN_DIR/$NAME" "${CLOUDVAMP_PUBLISHER_ARGS:-}" \
    >>"$LOG_FILE" 2>&1 </dev/null &
  echo $! >"$PID_FILE"
  log "started $NAME without systemd (pid $(cat "$PID_FILE"), log $LOG_FILE)"
}

main() {
  system=$(init_system)

  if [ "${CLOUDVAMP_PUBLISHER:-YES}" = "NO" ]; then
    log "CLOUDVAMP_PUBLISHER=NO: stopping and disabling $NAME"
    if [ "$system" = systemd ]; then
      systemctl --no-block stop "$NAME.service" 2>/dev/null
      systemctl disable "$NAME.service" 2>/dev/null
    else
      fallback_stop
    fi
    return 0
  fi

  if ! command -v python3 >/dev/null 2>&1; then
    log "python3 is not installed in this guest; the publisher needs Python 3.6 or newer"
    return 1
  fi
  if ! source_file=$(find_publisher); then
    log "cannot find $NAME beside $0, in $PWD or on the context CD: add it to FILES_DS"
    return 1
  fi

  changed=no
  install_if_changed "$source_file" "$SBIN_DIR/$NAME" 0755
  case $? in 0) changed=yes ;; 2) log "cannot write $SBIN_DIR/$NAME"; return 1 ;; esac

  if [ "$system" = systemd ]; then
    unit_source="$HERE/$NAME.service"
    if [ ! -f "$unit_source" ]; then
      unit_source=$(mktemp) || return 1
      write_unit >"$unit_source"
    fi
    unit_changed=no
    install_if_changed "$unit_source" "$UNIT_DIR/$NAME.service" 0644 && unit_changed=yes
    [ "$unit_source" = "$HERE/$NAME.service" ] || rm -f "$unit_source"
    if [ -n "${CLOUDVAMP_PUBLISHER_ARGS:-}" ]; then
      dropin=$(mktemp) || return 1
      printf '[Service]\nExecStart=\nExecStart=/usr/local/sbin/%s %s\n' \
        "$NAME" "$CLOUDVAMP_PUBLISHER_ARGS" >"$dropin"
      install_if_changed "$dropin" "$UNIT_DROPIN_DIR/args.conf" 0644 && unit_changed=yes
      rm -f "$dropin"
    elif [ -f "$UNIT_DROPIN_DIR/args.conf" ]; then
      rm -f "$UNIT_DROPIN_DIR/args.conf" && unit_changed=yes
    fi
    [ "$unit_changed" = yes ] && { systemctl daemon-reload; changed=yes; }
    systemctl enable "$NAME.service" >/dev/null 2>&1 || log "systemctl enable failed"
    # --no-block: we run inside one-context.service, which the unit is ordered after;
    # a blocking start would wait for us and deadlock the boot.
    if [ "$changed" = yes ] || ! systemctl is-active --quiet "$NAME.service"; then
      systemctl --no-block restart "$NAME.service" && log "$NAME (re)started by systemd"
    else
      log "$NAME unchanged and running"
    fi
  else
    if [ "$changed" = no ] && fallback_running_pid >/dev/null; then
      log "$NAME unchanged and running (pid $(cat "$PID_FILE"))"
    else
      fallback_stop
      fallback_start
    fi
  fi
  return 0
}

main "$@"
