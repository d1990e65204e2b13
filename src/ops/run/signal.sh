# Passes a signal on to a `dual run` command inside the container:
#   sh -c SCRIPT sh SIGNAL PID_FILE
# Sends SIGNAL to the process group recorded in PID_FILE by wrapper.sh,
# or to the process alone where it leads no group.
p=$(cat "$2") && { kill -"$1" -"$p" 2> /dev/null || kill -"$1" "$p"; }
