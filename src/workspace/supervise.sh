# dual-supervise: keeps one service of a workspace running. The files it
# reads and writes are described once, in src/workspace/services.rs.
#
# Started by dual-services as `sh dual-supervise NAME` (so `ps` shows that),
# with dual_base, dual_logs, dual_limit and dual_grace in its environment.
# It reads the command and its directory from $dual_base/NAME/{cmd,cwd},
# its ready check from `ready` and what it waits for from `after`.

name=$1
base=${dual_base:?}; logs=${dual_logs:?}; limit=${dual_limit:?}; grace=${dual_grace:?}
# Not for the service's own environment.
unset dual_base dual_logs dual_limit dual_grace

d=$base/$name
log=$logs/$name.log
state=$logs/$name.state
cmd=$(cat "$d/cmd") || exit 1
dir=$(cat "$d/cwd") || exit 1
# Written by a dual that knows them; none from an older one.
ready=$(cat "$d/ready" 2> /dev/null)
after=$(cat "$d/after" 2> /dev/null)

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

# Whether something listens on TCP port $1 here: a LISTEN (0A) socket of
# that port (hex) in /proc/net/tcp or tcp6. No tool of the image's needed
# (nc, bash's /dev/tcp), and a sidecar's listener shows too: it shares the
# network namespace.
listening() {
  hex=$(printf '%04X' "$1")
  for table in /proc/net/tcp /proc/net/tcp6; do
    [ -r "$table" ] || continue
    while read -r _ local _ st _; do
      [ "$st" = 0A ] && [ "${local##*:}" = "$hex" ] && return 0
    done < "$table"
  done
  return 1
}

# Sets `blocker` to the first of `after` that is not ready, and says what
# it is waiting on in `blocker_what`; returns 1 when all are ready. A word
# NAME:PORT is a sidecar that listens on PORT; a plain NAME is a service,
# ready once its supervisor says `running`.
find_blocker() {
  for dep in $after; do
    case $dep in
      *:*)
        listening "${dep#*:}" && continue
        blocker=${dep%%:*}; blocker_what="sidecar $blocker (localhost:${dep#*:})" ;;
      *)
        line=
        IFS= read -r line < "$logs/$dep.state" 2> /dev/null
        case $line in state=running\ *|running\ *) continue ;; esac
        blocker=$dep; blocker_what="service $dep" ;;
    esac
    return 0
  done
  blocker=
  return 1
}

# Waits until each of `after` is ready: `waiting` in the state line, and a
# line in the log when it starts waiting and every 10 s after. Returns 1
# when asked to stop.
wait_for_dependencies() {
  find_blocker || return 0
  since=$(date +%s); shown=; next=0
  while :; do
    waited=$(($(date +%s) - since))
    if [ "$blocker_what" != "$shown" ]; then
      write_state "state=waiting restarts=$restarts since=$since on=$blocker"
      note "waiting for $blocker_what"
      shown=$blocker_what; next=$((waited + 10))
    elif [ "$waited" -ge "$next" ]; then
      note "still waiting for $blocker_what ($waited s)"
      next=$((waited + 10))
    fi
    sleep 0.5
    [ -d "$d" ] && [ ! -e "$d/stop" ] || return 1
    find_blocker || { note "done waiting ($(($(date +%s) - since)) s)"; return 0; }
  done
}

# Runs the ready command in the service's directory, for at most 5 s:
# whether it exits 0. A killer ends a check that hangs; it notices the
# check's end within 0.1 s and leaves.
check_command() {
  (cd "$dir" && exec sh -c "$1") < /dev/null > /dev/null 2>&1 &
  checker=$!
  (
    i=0
    while [ "$i" -lt 50 ]; do
      sleep 0.1
      kill -0 "$checker" 2> /dev/null || exit 0
      i=$((i + 1))
    done
    kill -KILL "$checker" 2> /dev/null
  ) &
  killer=$!
  wait "$checker"
  checked=$?
  checker=
  wait "$killer"
  return "$checked"
}

# Whether the service's own ready check passes; `unready` says why not.
is_ready() {
  case $ready in
    port\ *)
      listening "${ready#port }" && return 0
      unready="nothing listens on localhost:${ready#port }" ;;
    command\ *)
      check_command "${ready#command }" && return 0
      unready="\`${ready#command }\` exited $checked" ;;
    *) return 0 ;;
  esac
  return 1
}

# Run beside the service while it is `starting`: checks `ready` every 0.5 s
# and writes `running` once it passes; until then a line in the log every
# 10 s. The supervisor ends it (SIGTERM) when the service's main process
# ends; the trap runs after a state line is written whole, never midway.
watch_ready() {
  trap 'kill -KILL "$checker" 2> /dev/null; exit 0' TERM
  checker=; next=10
  while :; do
    if is_ready; then
      write_state "state=running restarts=$restarts since=$started pid=$child ready=$(date +%s)"
      note "ready after $(($(date +%s) - started)) s"
      return 0
    fi
    waited=$(($(date +%s) - started))
    if [ "$waited" -ge "$next" ]; then
      note "not ready after $waited s: $unready; still starting"
      next=$((waited + 10))
    fi
    sleep 0.5
  done
}

# Restarted with backoff: 1 s doubling to 30 s, back to 1 s after a run of
# 10 s or more. Before each start, it waits for what the service depends on.
restarts=0; delay=1
while [ -d "$d" ] && [ ! -e "$d/stop" ]; do
  wait_for_dependencies || break
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
  watcher=
  if [ -n "$ready" ]; then
    write_state "state=starting restarts=$restarts since=$started pid=$child"
    watch_ready &
    watcher=$!
  else
    write_state "state=running restarts=$restarts since=$started pid=$child"
  fi
  wait "$child"
  code=$?
  # No state line of the watcher's after this one's.
  [ -n "$watcher" ] && { kill -TERM "$watcher" 2> /dev/null; wait "$watcher"; }
  if [ -e "$d/stop" ]; then
    end_group "$child"
    break
  fi
  # The main process is gone: never `running` from here on, whatever of
  # its group is still there.
  restarts=$((restarts + 1))
  write_state "state=restarting restarts=$restarts since=$(date +%s) code=$code"
  end_group "$child"
  # Gone: `stop` must not signal a pid the system may hand out again.
  rm -f "$d/child"
  [ $(($(date +%s) - started)) -ge 10 ] && delay=1
  note "exited ($code); restarting in $delay s"
  i=0
  while [ "$i" -lt $((delay * 5)) ] && [ ! -e "$d/stop" ]; do sleep 0.2; i=$((i + 1)); done
  delay=$((delay * 2)); [ "$delay" -gt 30 ] && delay=30
done
write_state "state=stopped restarts=$restarts since=$(date +%s)"
note "stopped"
rm -rf "$d"
