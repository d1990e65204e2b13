# A command run for a caller that may go away (the MCP server's `run`):
#   sh -c SCRIPT sh RUN_ID COMMAND [ARG]...
# dual holds this exec's stdin open and never writes to it. Its end (dual
# gave up at a timeout or a cancel, or dual itself is gone) kills every
# process that carries this run's mark, however it detached itself; so does
# the command's own end, for what it left running. The mark is an
# environment variable set for COMMAND alone: this shell and its watcher
# do not carry it. COMMAND's stdin is /dev/null.
id=$1
shift

end_marked() {
  # (The id ends in `z`, which no other id holds inside: no prefix matches.)
  for _ in 1 2 3 4 5; do
    found=
    # shellcheck disable=SC2013 # /proc paths: no spaces
    for environ in $(grep -l "DUAL_RUN_ID=$id" /proc/[0-9]*/environ 2> /dev/null); do
      pid=${environ#/proc/}
      pid=${pid%/environ}
      kill -9 "$pid" 2> /dev/null && found=1
    done
    [ -z "$found" ] && return 0
  done
}

# `sh -c SCRIPT sh --end RUN_ID`: only end what carries the mark (dual's
# last resort, when the held stdin did not end it).
if [ "$id" = --end ]; then
  id=$1
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
