# Runs a command exec'd into a workspace container once the container's
# start-up work is done:
#   sh -c SCRIPT sh READY COMMAND [ARG]...
# waits (up to 3 s) for the file READY where one is named (see
# identity::READY_FILE; empty for a container of an older dual, which has
# none), then becomes COMMAND: it never races the start-up that makes the
# user known inside. The file `path` beside READY, written by the entry
# from the config's `path`, goes first on PATH (`dual run python` finds
# the clone's `.venv/bin/python`).
ready=$1; shift
i=0
while [ -n "$ready" ] && [ ! -e "$ready" ] && [ "$i" -lt 300 ]; do
  sleep 0.01; i=$((i + 1))
done
if [ -n "$ready" ] && [ -s "${ready%/*}/path" ] && IFS= read -r first < "${ready%/*}/path"; then
  PATH=$first${PATH:+:$PATH}
  export PATH
fi
exec "$@"
