# Starts a workspace container's main process from a file, so that `ps`
# shows `sh /run/dual/dual-entry ARGS`, not the entry's text:
#   sh -c SCRIPT dual-boot ENTRY FILE [ARG]...
# writes ENTRY (the text of entry.sh) to FILE, a tmpfs of the container's,
# and becomes `sh FILE ARG...`; where FILE cannot be written, it runs the
# text as it is.
entry=$1; file=$2; shift 2
if printf '%s' "$entry" > "$file"; then
  exec sh "$file" "$@"
fi
exec sh -c "$entry" dual-entry "$@"
