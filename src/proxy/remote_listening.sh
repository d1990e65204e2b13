# The TCP listeners of processes' network namespaces on an engine's host,
# for dual's proxy on another host (see remote_listening.rs). Runs there,
# over ssh, as the ssh user; POSIX sh, grep and sed.
#
#   sh -c SCRIPT sh INTERVAL PID...
#
# Every INTERVAL seconds it reads /proc/PID/net/tcp and tcp6 of each PID (a
# container's, in this host's pid namespace) and keeps the sockets in LISTEN
# state (st 0A). Only when that differs from what it last printed, it
# prints a snapshot:
#
#   PID: LOCAL REMOTE 0A   a listening socket: a /proc/net/tcp line's first
#                          four fields, the slot number replaced by the pid;
#                          its queues are left out (they change while
#                          connections wait, the listener does not)
#   . PID...               the end: the pids whose tables it read (one not
#                          named is gone)
#
# Nothing else: an idle link carries nothing. It ends when its stdin does
# (the ssh session closed, or dual let go of it).
set -u
interval=$1
shift

snapshot() {
  tables=/dev/null
  read=
  for pid in "$@"; do
    case $pid in '' | *[!0-9]*) continue ;; esac
    if [ -r "/proc/$pid/net/tcp" ]; then
      tables="$tables /proc/$pid/net/tcp /proc/$pid/net/tcp6"
      read="$read $pid"
    fi
  done
  # /dev/null first: grep names the file of every line, however many
  # tables there are; -s: a table gone meanwhile (its process exited) or
  # missing (no IPv6) is no error. ' 0A ': only the state field can read so.
  # shellcheck disable=SC2086 # split on purpose: paths made of digits
  grep -s ' 0A ' $tables |
    sed -n 's|^/proc/\([0-9]*\)/net/tcp6*: *[0-9]*: \([0-9A-F]*:[0-9A-F]*\) \([0-9A-F]*:[0-9A-F]*\) 0A .*|\1: \2 \3 0A|p'
  echo ".$read"
}

watch() {
  last=
  while :; do
    now=$(snapshot "$@")
    if [ "$now" != "$last" ]; then
      printf '%s\n' "$now" || exit
      last=$now
    fi
    # A sleep that takes whole seconds only (POSIX's) still ends the loop's
    # pause.
    sleep "$interval" 2>/dev/null || sleep 1
  done
}

watch "$@" &
watching=$!
cat >/dev/null
kill "$watching" 2>/dev/null
