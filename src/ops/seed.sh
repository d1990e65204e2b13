# Copies one dependency directory of a parent workspace into a new
# workspace, then rewrites where its files and links name the parent's
# clone. Runs in a container of its own: no network, as the user, no
# capabilities; the parent's side mounted read-only, the new clone's `.git`
# read-only. POSIX sh and busybox's tools.
#
#   sh -c SCRIPT sh FROM TO MODE OLD NEW PROGRAM
#
# FROM     the parent's directory
# TO       where the copy goes: `dir` mode, a path of the clone that must not
#          exist yet (copied beside it, then renamed); `volume` mode, the
#          empty mount point of the new workspace's volume
# OLD NEW  the parent's clone path and the new one
# PROGRAM  the sed program that replaces OLD by NEW (made by dual, which
#          escapes them)
#
# Its scratch files go to /run/dual-seed, a tmpfs dual mounts for it.
#
# Prints `copied KIB REWRITTEN` at the end; `skipped: WHY` and exit 3 where
# there is nothing to do.
set -eu
from=$1 to=$2 mode=$3 old=$4 new=$5 program=$6

if [ ! -d "$from" ] || [ -L "$from" ]; then
  echo "skipped: the parent has no directory there"
  exit 3
fi
case $mode in
  dir)
    if [ -e "$to" ] || [ -L "$to" ]; then
      echo "skipped: the new workspace has it already"
      exit 3
    fi
    work="$to.dual-seed-partial"
    rm -rf "$work"
    mkdir -p "$(dirname "$to")"
    ;;
  volume)
    if [ -n "$(ls -A "$to")" ]; then
      echo "skipped: the new workspace's volume is not empty"
      exit 3
    fi
    work=$to
    ;;
  *)
    echo "unknown mode $mode" >&2
    exit 2
    ;;
esac

# While `cp` writes, the other CPU reads the parent's side: its size, and
# its text files that name the parent's clone (a venv's scripts, its
# pyvenv.cfg and activate scripts, an editable install's .pth). Compiled
# files are left as they are (a path of another length would break them;
# Python corrects a .pyc's source path when it loads it): by name here,
# as they are most of a venv, then any file with a NUL byte.
scratch=/run/dual-seed
(du -sk "$from" | cut -f1 > "$scratch/size") &
sizer=$!
(cd "$from" && find . -type f ! -name '*.pyc' ! -name '*.so' ! -name '*.so.*' \
  -exec grep -lF -e "$old" {} + > "$scratch/named") &
searcher=$!
if [ "$mode" = dir ]; then
  copied() { cp -a "$from" "$work"; }
  undo() { rm -rf "$work"; }
else
  copied() { cp -a "$from/." "$work/"; }
  undo() { find "$work" -mindepth 1 -maxdepth 1 -exec rm -rf {} +; }
fi
if ! copied; then
  undo
  exit 1
fi
wait "$sizer" "$searcher" || true

# Rewritten in the copy. A name is read a line at a time: a name with a
# line break in it is only ever read as names of files in the copy, which
# are the copy's to rewrite.
rewritten=$(while IFS= read -r file; do
    case $file in ./*) ;; *) continue ;; esac
    file=$work/${file#./}
    if [ ! -f "$file" ] || [ -L "$file" ]; then continue; fi
    # shellcheck disable=SC2094 # both only read it
    tr -d '\000' < "$file" | cmp -s - "$file" || continue
    sed -i -E -e "$program" "$file"
    echo "$file"
  done < "$scratch/named" | wc -l)

# Links that point into the parent's clone point into the new one.
cd "$work"
relinked=$(find . -type l -exec sh -c '
  old=$1 new=$2
  shift 2
  for link do
    target=$(readlink "$link")
    case $target in
      "$old" | "$old"/*)
        ln -sfn "$new${target#"$old"}" "$link"
        echo "$link"
        ;;
    esac
  done' sh "$old" "$new" {} + | wc -l)

cd /
if [ "$mode" = dir ]; then
  mv "$work" "$to"
fi
echo "copied $(cat "$scratch/size") $((rewritten + relinked))"
