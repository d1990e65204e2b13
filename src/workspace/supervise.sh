# dual-supervise: keeps one service of a workspace running. The files it
# reads and writes are described once, in src/workspace/services.rs.
#
# Started by dual-services as `sh dual-supervise NAME` (so `ps` shows that),
# with dual_base, dual_logs, dual_limit and dual_grace in its environment.
# It reads the command and its directory from $dual_base/NAME/{cmd,cwd}.

name=$1
base=${dual_base:?}; logs=${dual_logs:?}; limit=${dual_limit:?}; grace=${dual_grace:?}
# Not for the service's own environment.
unset dual_base dual_logs dual_limit dual_grace

d=$base/$name
log=$logs/$name.log
state=$logs/$name.state
cmd=$(cat "$d/cmd") || exit 1
dir=$(cat "$d/cwd") || exit 1

stamp() { date '+%Y-%m-%d %H:%M:%S'; }
note() { printf '[dual] %s %s\n' "$(stamp)" "$1" >> "$log"; }

# A state line replaces the last one whole (renamed into place), so that
# dual never reads half of one.
write_state() {
  printf '%s\n' "$1" > "$state.new" && mv -f "$state.new" "$state"
}

# Appends stdin to the log, rolled over to $log.1 at $limit bytes. dd, not
# head: it writes each read as it comes (GNU head holds a partial block), and
# a read that adds nothing means the stream ended.
log_output() {
  used=$(wc -c < "$log" 2> /dev/null) || used=0
  while :; do
    if [ "$used" -ge "$limit" ]; then mv -f "$log" "$log.1"; used=0; fi
    room=$((limit - used)); block=16384
    [ "$room" -lt "$block" ] && block=$room
    dd bs="$block" count=$((room / block)) >> "$log" 2> /dev/null || return 0
    now=$(wc -c < "$log" 2> /dev/null) || return 0
    [ "$now" -eq "$used" ] && return 0
    used=$now
  done
}

# Ends process group $1, or process $1 alone where the image has no setsid:
# SIGTERM, then SIGKILL for whatever is left after the grace period.
end_group() {
  kill -TERM -"$1" 2> /dev/null || kill -TERM "$1" 2> /dev/null
  i=0
  while [ "$i" -lt $((grace * 10)) ]; do
    kill -0 -"$1" 2> /dev/null || kill -0 "$1" 2> /dev/null || return 0
    sleep 0.1; i=$((i + 1))
  done
  kill -KILL -"$1" 2> /dev/null || kill -KILL "$1" 2> /dev/null
  return 0
}

# Restarted with backoff: 1 s doubling to 30 s, back to 1 s after a run of
# 10 s or more.
restarts=0; delay=1
while [ -d "$d" ] && [ ! -e "$d/stop" ]; do
  note "start: $cmd"
  # The output goes through a FIFO to a logger outside the service's process
  # group: the supervisor waits on the service's main process alone, never
  # on whatever else holds its output open.
  out=$d/out
  rm -f "$out"
  if mkfifo "$out" 2> /dev/null; then
    log_output < "$out" &
  else
    out=$log
  fi
  # Its own process group where the image has setsid (which then execs in
  # place: $! is the command's pid), so that ending it reaches what it
  # started (npm's node, runserver's reloader child).
  if command -v setsid > /dev/null 2>&1; then
    (cd "$dir" && exec setsid sh -c "$cmd") < /dev/null >> "$out" 2>&1 &
  else
    (cd "$dir" && exec sh -c "$cmd") < /dev/null >> "$out" 2>&1 &
  fi
  child=$!
  echo "$child" > "$d/child"
  started=$(date +%s)
  write_state "state=running restarts=$restarts since=$started pid=$child"
  wait "$child"
  code=$?
  if [ -e "$d/stop" ]; then
    end_group "$child"
    break
  fi
  # The main process is gone: never `running` from here on, whatever of
  # its group is still there.
  restarts=$((restarts + 1))
  write_state "state=restarting restarts=$restarts since=$(date +%s) code=$code"
  end_group "$child"
  [ $(($(date +%s) - started)) -ge 10 ] && delay=1
  note "exited ($code); restarting in $delay s"
  i=0
  while [ "$i" -lt $((delay * 5)) ] && [ ! -e "$d/stop" ]; do sleep 0.2; i=$((i + 1)); done
  delay=$((delay * 2)); [ "$delay" -gt 30 ] && delay=30
done
write_state "state=stopped restarts=$restarts since=$(date +%s)"
note "stopped"
rm -rf "$d"
