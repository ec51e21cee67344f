#!/usr/bin/env bash
# Starts a private, throw-away PostgreSQL server for photo-sorter's tests (idempotent).
#
#   url=$(./scripts/start-postgres.sh | tail -n 1)
#
# - Installs Debian's `postgresql` package when no `initdb` is found (apt-get; sudo when not root).
# - The cluster lives in $PHOTO_SORTER_PG_DIR (default: <repo>/.build-pg) and is owned by a non-root
#   user: the current user, or the system user `photosorter-pg` (created on demand) when run as root,
#   because PostgreSQL refuses to run as root.
# - Listens on 127.0.0.1:${PHOTO_SORTER_PG_PORT:-55432} only, trust authentication on loopback,
#   superuser `postgres`, database `photo_sorter_test` (or $PHOTO_SORTER_PG_DB; PHOTO_SORTER_PG_FRESH=1
#   drops and recreates it first).
# - Prints progress on stderr and the connection URL as the last line of stdout.
# Stop it with ./scripts/stop-postgres.sh.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${PHOTO_SORTER_PG_PORT:-55432}"
DB="${PHOTO_SORTER_PG_DB:-photo_sorter_test}"
SUPERUSER=postgres
PG_SYSTEM_USER=photosorter-pg

log() { echo "start-postgres: $*" >&2; }
die() { echo "start-postgres: ERROR: $*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root (or sudo) to run: $*"; fi
}

find_bindir() {
    local d
    if [ -n "${PHOTO_SORTER_PG_BIN:-}" ] && [ -x "$PHOTO_SORTER_PG_BIN/initdb" ]; then
        echo "$PHOTO_SORTER_PG_BIN"; return 0
    fi
    # Newest installed major version first.
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -V -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then echo "$d"; return 0; fi
    done
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"; return 0
    fi
    return 1
}

BINDIR="$(find_bindir || true)"
if [ -z "$BINDIR" ]; then
    log "no PostgreSQL server binaries found; installing Debian package 'postgresql'"
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install PostgreSQL (initdb, pg_ctl) yourself or set PHOTO_SORTER_PG_BIN"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    BINDIR="$(find_bindir || true)"
    [ -n "$BINDIR" ] || die "installed 'postgresql' but still no initdb under /usr/lib/postgresql/*/bin"
fi

# --- who owns the cluster -------------------------------------------------------------------
if [ "$(id -u)" -eq 0 ]; then
    if ! id -u "$PG_SYSTEM_USER" >/dev/null 2>&1; then
        log "creating system user $PG_SYSTEM_USER"
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$PG_SYSTEM_USER" \
            || die "could not create system user $PG_SYSTEM_USER"
    fi
    RUN_USER="$PG_SYSTEM_USER"
    as_pg() { runuser -u "$PG_SYSTEM_USER" -- "$@"; }
else
    RUN_USER="$(id -un)"
    as_pg() { "$@"; }
fi

# --- where the cluster lives ----------------------------------------------------------------
BASE="${PHOTO_SORTER_PG_DIR:-$REPO/.build-pg}"
mkdir -p "$BASE"
BASE="$(cd "$BASE" && pwd)"
if [ "$(id -u)" -eq 0 ]; then
    chown "$RUN_USER" "$BASE"
    chmod 700 "$BASE"
    if ! as_pg test -w "$BASE"; then
        # A parent directory is not traversable by the unprivileged user (e.g. a checkout under /root).
        FALLBACK="${TMPDIR:-/tmp}/photo-sorter-pg-$(echo "$BASE" | cksum | cut -d' ' -f1)"
        log "$RUN_USER cannot reach $BASE; using $FALLBACK instead"
        mkdir -p "$FALLBACK"; chown "$RUN_USER" "$FALLBACK"; chmod 700 "$FALLBACK"
        BASE="$FALLBACK"
    fi
fi
DATA="$BASE/data"
LOGFILE="$BASE/postgres.log"

if [ ! -s "$DATA/PG_VERSION" ]; then
    log "initialising cluster in $DATA (binaries: $BINDIR, owner: $RUN_USER)"
    rm -rf "$DATA"
    as_pg "$BINDIR/initdb" -D "$DATA" -U "$SUPERUSER" -A trust -E UTF8 --locale=C >"$BASE/initdb.log" 2>&1 \
        || { cat "$BASE/initdb.log" >&2; die "initdb failed"; }
    cat >>"$DATA/postgresql.conf" <<EOF

# --- photo-sorter test cluster ---
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = ''
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    # Trust only loopback TCP; no unix socket is opened at all.
    cat >"$DATA/pg_hba.conf" <<EOF
# TYPE  DATABASE  USER  ADDRESS        METHOD
host    all       all   127.0.0.1/32   trust
EOF
fi

# The port may have been changed since the cluster was made.
if ! grep -q "^port = $PORT\$" "$DATA/postgresql.conf"; then
    echo "port = $PORT" >>"$DATA/postgresql.conf"
fi

if as_pg "$BINDIR/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    log "already running ($DATA)"
else
    # A stale pid file after a crash is handled by pg_ctl itself.
    log "starting on 127.0.0.1:$PORT (log: $LOGFILE)"
    if ! as_pg "$BINDIR/pg_ctl" -D "$DATA" -l "$LOGFILE" -w -t 60 -o "-p $PORT" start >&2; then
        tail -n 30 "$LOGFILE" >&2 || true
        die "PostgreSQL did not start (is port $PORT already in use? set PHOTO_SORTER_PG_PORT)"
    fi
fi

for _ in $(seq 1 60); do
    if "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PORT" 2>/dev/null; then break; fi
    sleep 0.5
done
"$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PORT" || die "PostgreSQL is not accepting connections on 127.0.0.1:$PORT"

PSQL="$BINDIR/psql"
[ -x "$PSQL" ] || PSQL="$(command -v psql || true)"
[ -n "$PSQL" ] || die "psql not found"
if [ "${PHOTO_SORTER_PG_FRESH:-0}" = 1 ]; then
    log "dropping database $DB (PHOTO_SORTER_PG_FRESH=1)"
    "$PSQL" -h 127.0.0.1 -p "$PORT" -U "$SUPERUSER" -d postgres -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >&2
fi
exists="$("$PSQL" -h 127.0.0.1 -p "$PORT" -U "$SUPERUSER" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")"
if [ "$exists" != "1" ]; then
    log "creating database $DB"
    "$PSQL" -h 127.0.0.1 -p "$PORT" -U "$SUPERUSER" -d postgres -qc "CREATE DATABASE \"$DB\"" >&2
fi

echo "postgres://$SUPERUSER@127.0.0.1:$PORT/$DB"
