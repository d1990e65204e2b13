# dual-entry: the main process of a workspace container, run as the user.
#
# sh -c SCRIPT dual-entry LOGS READY BASE GRACE PATHS
#   LOGS   the services' logs and state lines (see services.rs)
#   READY  created once start-up is done (see identity::READY_FILE)
#   BASE   the service supervisors' bookkeeping directory
#   GRACE  seconds a service gets between SIGTERM and SIGKILL
#   PATHS  directories put first on PATH for what is exec'd (`a:b`), or
#          empty: written to `path` beside READY (after-start-up.sh)
#
# Clears the state lines the previous run left (their processes died with
# it), says it is ready, then idles; on SIGTERM (`dual stop`, the engine
# shutting down) it stops every service, then exits.

logs=$1; ready=$2; base=$3; grace=$4; paths=$5

rm -f "$logs"/*.state "$logs"/*.state.new 2> /dev/null
if [ -n "$paths" ]; then
  printf '%s\n' "$paths" > "${ready%/*}/path"
fi
: > "$ready"

# Each service's process group gets SIGTERM; once its supervisor is gone (it
# removes its directory) or the grace period is over, SIGKILL.
stop_services() {
  for d in "$base"/*/; do
    [ -d "$d" ] || continue
    : > "$d/stop"
    c=$(cat "$d/child" 2> /dev/null)
    [ -n "$c" ] && { kill -TERM -"$c" 2> /dev/null || kill -TERM "$c" 2> /dev/null; }
  done
  i=0
  while [ "$i" -lt $((grace * 10)) ]; do
    alive=
    for d in "$base"/*/; do [ -d "$d" ] && alive=1; done
    [ -z "$alive" ] && return 0
    sleep 0.1; i=$((i + 1))
  done
  for d in "$base"/*/; do
    c=$(cat "$d/child" 2> /dev/null)
    [ -n "$c" ] && { kill -KILL -"$c" 2> /dev/null || kill -KILL "$c" 2> /dev/null; }
  done
}

trap 'stop_services; exit 0' TERM INT
sleep infinity &
wait
