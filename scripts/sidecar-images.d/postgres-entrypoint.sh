#!/bin/sh
# The postgres:16 stand-in's entrypoint (see ../sidecar-images): what the
# official image's docker-entrypoint.sh does, as the image's own user
# (postgres) with no capabilities, so without gosu, su or chown.
#
# Honours POSTGRES_PASSWORD, POSTGRES_USER (default postgres), POSTGRES_DB
# (default: the user), PGDATA (default /var/lib/postgresql/data),
# POSTGRES_HOST_AUTH_METHOD (default scram-sha-256 with a password),
# POSTGRES_INITDB_ARGS, POSTGRES_INITDB_WALDIR, and runs
# /docker-entrypoint-initdb.d/*.sh and *.sql once, on an empty data dir.
set -eu

# The server's programs first (Debian keeps them out of /usr/bin).
for bin in /usr/lib/postgresql/*/bin; do
  case ":$PATH:" in *":$bin:"*) ;; *) PATH=$bin:$PATH ;; esac
done
export PATH

# Flags alone are flags for postgres, as in the official image.
if [ "$#" = 0 ] || [ "${1#-}" != "$1" ]; then
  set -- postgres "$@"
fi
# Any other command runs as given (psql, pg_dump, sh, …).
[ "$1" = postgres ] || exec "$@"

export PGDATA="${PGDATA:-/var/lib/postgresql/data}"
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
password=${POSTGRES_PASSWORD:-}
auth=${POSTGRES_HOST_AUTH_METHOD:-}

export POSTGRES_USER="$user" POSTGRES_DB="$db"

log() { printf '%s\n' "$*" >&2; }

# Started as root anyway (`--user 0`): initdb and postgres refuse root, so
# hand the data dir to postgres and start again as postgres, as the official
# image does with gosu (setpriv is util-linux's; this needs CAP_CHOWN/SETUID).
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA"
  chown postgres:postgres "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

# A named volume mounted here arrives with the image's ownership (postgres,
# 0700); anything else the user must fix, since nothing here may chown.
mkdir -p "$PGDATA" 2>/dev/null || true
if [ ! -w "$PGDATA" ]; then
  log "postgres-entrypoint: $PGDATA is not writable by uid $(id -u); give the volume to that user (chown) or mount an empty named volume there"
  exit 1
fi
chmod 0700 "$PGDATA" 2>/dev/null || true

if [ -s "$PGDATA/PG_VERSION" ]; then
  log "PostgreSQL Database directory appears to contain a database; Skipping initialization"
  exec "$@"
fi

if [ -z "$password" ] && [ "$auth" != trust ]; then
  log "Error: Database is uninitialized and superuser password is not specified."
  log "       Set POSTGRES_PASSWORD to a non-empty value for the superuser, or"
  log "       POSTGRES_HOST_AUTH_METHOD=trust to allow all connections without a password."
  exit 1
fi
[ -n "$auth" ] || auth=scram-sha-256

waldir=
[ -z "${POSTGRES_INITDB_WALDIR:-}" ] || waldir="--waldir=$POSTGRES_INITDB_WALDIR"
# Word splitting of POSTGRES_INITDB_ARGS is wanted, as in the official image.
# --no-sync, unlike the official image: a test's database need not survive the
# host crashing, and syncing a fresh cluster takes seconds on a slow disk.
# shellcheck disable=SC2086
if [ -n "$password" ]; then
  printf '%s\n' "$password" | initdb --username="$user" --pwfile=/dev/stdin --no-sync \
    --auth-local=trust --auth-host="$auth" $waldir ${POSTGRES_INITDB_ARGS:-} >&2
else
  initdb --username="$user" --no-sync --auth-local=trust --auth-host="$auth" \
    $waldir ${POSTGRES_INITDB_ARGS:-} >&2
fi

# Every address, as the official image's sample configuration says.
{
  echo "listen_addresses = '*'"
} >>"$PGDATA/postgresql.conf"
{
  echo "host all all all $auth"
} >>"$PGDATA/pg_hba.conf"

# A server on the socket only while the database and the scripts are made.
pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start >&2
sql() { psql -v ON_ERROR_STOP=1 --no-psqlrc --username="$user" --no-password "$@"; }
if [ "$db" != postgres ]; then
  sql --dbname=postgres --set db="$db" <<'SQL' >&2
SELECT 'CREATE DATABASE ' || quote_ident(:'db') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
SQL
fi
for f in /docker-entrypoint-initdb.d/*; do
  case "$f" in
    *.sh) log "running $f"; sh "$f" ;;
    *.sql) log "running $f"; sql --dbname="$db" -f "$f" >&2 ;;
    *) if [ -e "$f" ]; then log "ignoring $f"; fi ;;
  esac
done
pg_ctl -D "$PGDATA" -m fast -w stop >&2
log "PostgreSQL init process complete; ready for start up."

exec "$@"
