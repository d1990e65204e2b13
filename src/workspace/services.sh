# dual-services: starts, restarts and stops the service supervisors of a
# workspace's container. The files it reads and writes are described once,
# in src/workspace/services.rs.
#
# sh -c SCRIPT dual-services SUPERVISOR BASE LOGS LIMIT GRACE MODE ONLY [NAME DIR COMMAND READY AFTER]...
#   SUPERVISOR  the text of dual-supervise, written next to BASE
#   BASE        the supervisors' bookkeeping directory (a tmpfs)
#   LOGS        where logs and state lines go (a bind mount of the host's)
#   LIMIT       bytes a log holds before it rolls over
#   GRACE       seconds between SIGTERM and SIGKILL
#   MODE        `ensure`: start what is missing or changed, stop what is no
#               longer named; `restart`: also restart the services in ONLY
#               (space-separated; `*` for all)
#   READY       the service's ready check: `port N`, `command LINE` or empty
#   AFTER       what it waits for, space-separated: NAME (a service) or
#               NAME:PORT (a sidecar listening on PORT)
# Services come in the order to start them in: each after what it waits for.

supervisor=$1; base=$2; logs=$3; limit=$4; grace=$5; mode=$6; only=$7
shift 7
mkdir -p "$base" || exit 1

# Supervisors run it from a file, so that `ps` shows `dual-supervise NAME`.
# Renamed into place: a running supervisor keeps reading the file it opened.
program=${base%/*}/dual-supervise
printf '%s' "$supervisor" > "$program.$$" && mv -f "$program.$$" "$program" || exit 1

# Starts the supervisor of service $1 (command $3 in directory $2, ready
# check $4, waiting for $5) unless one is there. Its directory is the lock;
# `cwd`, written last, says it is whole.
start() {
  d=$base/$1
  mkdir "$d" 2> /dev/null || return 0
  printf '%s' "$3" > "$d/cmd"
  printf '%s' "$4" > "$d/ready"
  printf '%s' "$5" > "$d/after"
  printf '%s' "$2" > "$d/cwd"
  # `exec` redirects for good: a redirected function call would keep the
  # exec session's output open in copies, and `docker exec` would wait on it.
  (
    exec < /dev/null > /dev/null 2>&1
    exec env dual_base="$base" dual_logs="$logs" dual_limit="$limit" dual_grace="$grace" \
      sh "$program" "$1"
  ) &
}

stop_one() {
  d=$base/$1
  [ -d "$d" ] || return 0
  : > "$d/stop"
  c=$(cat "$d/child" 2> /dev/null)
  [ -n "$c" ] && { kill -TERM -"$c" 2> /dev/null || kill -TERM "$c" 2> /dev/null; }
  i=0
  while [ -d "$d" ] && [ "$i" -lt $((grace * 10)) ]; do sleep 0.1; i=$((i + 1)); done
  if [ -d "$d" ]; then
    [ -n "$c" ] && { kill -KILL -"$c" 2> /dev/null || kill -KILL "$c" 2> /dev/null; }
    i=0
    while [ -d "$d" ] && [ "$i" -lt 20 ]; do sleep 0.1; i=$((i + 1)); done
    rm -rf "$d"
  fi
}

wanted=' '
while [ "$#" -ge 5 ]; do
  name=$1; dir=$2; cmd=$3; ready=$4; after=$5; shift 5
  wanted="$wanted$name "
  d=$base/$name
  if [ -d "$d" ]; then
    # Another start is writing it (cmd, then cwd): that one wins.
    [ -e "$d/cwd" ] || continue
    asked=
    if [ "$mode" = restart ]; then
      case " $only " in *" $name "*|" * ") asked=1 ;; esac
    fi
    if [ -z "$asked" ] && [ "$(cat "$d/cmd" 2> /dev/null)" = "$cmd" ] \
      && [ "$(cat "$d/cwd" 2> /dev/null)" = "$dir" ] \
      && [ "$(cat "$d/ready" 2> /dev/null)" = "$ready" ] \
      && [ "$(cat "$d/after" 2> /dev/null)" = "$after" ]; then
      continue
    fi
    stop_one "$name"
  fi
  start "$name" "$dir" "$cmd" "$ready" "$after"
done
for d in "$base"/*/; do
  [ -d "$d" ] || continue
  name=${d%/}; name=${name##*/}
  case "$wanted" in *" $name "*) ;; *) stop_one "$name" ;; esac
done
