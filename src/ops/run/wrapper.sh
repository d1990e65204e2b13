# The wrapper of `dual run` inside the container:
#   sh -c SCRIPT sh PID_FILE COMMAND [ARG]...
# Records its own pid (which `exec` keeps) in PID_FILE, drops the records
# under /run/dual of processes that are gone, then becomes COMMAND. Run
# through `workspace::after_start_up`, so never before the container's
# start-up. `dual run` hands each signal it gets to the recorded process
# group (signal.sh).
f=$1; shift
for old in /run/dual/run-*; do
  p=$(cat "$old")
  if [ -z "$p" ] || [ ! -d "/proc/$p" ]; then rm -f "$old"; fi
done 2> /dev/null
{ echo $$ > "$f"; } 2> /dev/null
command -v "$1" > /dev/null 2>&1 || { echo "$1: command not found" >&2; exit 127; }
exec "$@"
