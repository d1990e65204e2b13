# A command run for a caller that may go away (the MCP server's `run`):
#   sh -c SCRIPT sh RUN_ID COMMAND [ARG]...
# dual holds this exec's stdin open and never writes to it. Its end (dual
# gave up at a timeout or a cancel, or dual itself is gone) kills every
# process the run started; so does the command's own end, for what it
# left running. Two marks find them, however they detached themselves:
# - the run's session: the engine starts each exec as the leader of a
#   session of its own, and everything started in it stays in it unless it
#   calls setsid (a daemon does);
# - an environment variable, DUAL_RUN_ID, set for COMMAND alone (this
#   shell and its watcher do not carry it), which a program that calls
#   setsid keeps unless it clears its environment.
# So a process escapes only by doing both: leaving the session and
# dropping the variable (`env -i setsid …`). COMMAND's stdin is /dev/null.
id=$1
shift

# The session of process $1, as this container numbers it (empty when
# gone); in `sid`. `status` escapes what a name holds, `stat` does not.
session_of() {
  sid=
  while read -r key value rest; do
    case $key in NSsid:) sid=$value; break ;; esac
  done < "/proc/$1/status"
}

# This shell leads the run's session only where the engine made it so.
session_of $$
session=
[ "$sid" = "$$" ] && session=$$

end_marked() {
  read -r me rest < /proc/self/stat
  for _ in 1 2 3 4 5; do
    found=
    # Everything in the run's session...
    if [ -n "$session" ]; then
      for dir in /proc/[0-9]*; do
        pid=${dir#/proc/}
        case $pid in "$$" | "$me") continue ;; esac
        session_of "$pid" 2> /dev/null
        if [ "$sid" = "$session" ]; then
          kill -9 "$pid" 2> /dev/null && found=1
        fi
      done
    fi
    # ...and what carries its mark, however it left the session (one grep:
    # the id ends in `z`, which no other id holds inside, so no prefix
    # matches).
    # shellcheck disable=SC2013 # /proc paths: no spaces
    for environ in $(grep -l "DUAL_RUN_ID=$id" /proc/[0-9]*/environ 2> /dev/null); do
      pid=${environ#/proc/}
      pid=${pid%/environ}
      kill -9 "$pid" 2> /dev/null && found=1
    done
    [ -z "$found" ] && return 0
  done
}

# `sh -c SCRIPT sh --end RUN_ID`: dual's last resort, when the held stdin
# did not end the run. This exec has a session of its own: the run's is
# that of the held shell, the session leader with RUN_ID as an argument.
if [ "$id" = --end ]; then
  id=$1
  session=
  for dir in /proc/[0-9]*; do
    pid=${dir#/proc/}
    [ "$pid" = "$$" ] && continue
    if tr '\000' '\n' 2> /dev/null < "$dir/cmdline" | grep -qx -- "$id"; then
      session_of "$pid" 2> /dev/null
      [ "$sid" = "$pid" ] && session=$pid && kill -9 "$pid" 2> /dev/null
    fi
  done
  end_marked
  exit 0
fi

command -v "$1" > /dev/null 2>&1 || { echo "$1: command not found" >&2; exit 127; }

# (An asynchronous list's stdin is /dev/null unless redirected: the
# watcher gets the held stdin through fd 3.)
exec 3<&0
DUAL_RUN_ID=$id "$@" < /dev/null 3<&- &
child=$!
{ cat > /dev/null; end_marked; } <&3 > /dev/null 2>&1 &
exec 3<&-
wait "$child"
status=$?
end_marked
exit "$status"
