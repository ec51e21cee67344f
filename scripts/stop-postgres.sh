#!/usr/bin/env bash
# Stops the test PostgreSQL server started by ./scripts/start-postgres.sh (no-op when not running).
# Pass --purge to also delete its data directory.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_SYSTEM_USER=photosorter-pg
BASE="${PHOTO_SORTER_PG_DIR:-$REPO/.build-pg}"

log() { echo "stop-postgres: $*" >&2; }

BINDIR=""
if [ -n "${PHOTO_SORTER_PG_BIN:-}" ] && [ -x "$PHOTO_SORTER_PG_BIN/pg_ctl" ]; then BINDIR="$PHOTO_SORTER_PG_BIN"; fi
if [ -z "$BINDIR" ]; then
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -V -r); do
        if [ -x "$d/pg_ctl" ]; then BINDIR="$d"; break; fi
    done
fi
if [ -z "$BINDIR" ] && command -v pg_ctl >/dev/null 2>&1; then BINDIR="$(dirname "$(command -v pg_ctl)")"; fi
[ -n "$BINDIR" ] || { log "pg_ctl not found; nothing to stop"; exit 0; }

if [ "$(id -u)" -eq 0 ] && id -u "$PG_SYSTEM_USER" >/dev/null 2>&1; then
    as_pg() { runuser -u "$PG_SYSTEM_USER" -- "$@"; }
else
    as_pg() { "$@"; }
fi

# Same fallback location start-postgres.sh uses when the repo is not reachable by the pg user.
CANDIDATES=("$BASE")
if [ -d "$BASE" ]; then
    ABS="$(cd "$BASE" && pwd)"
    CANDIDATES+=("${TMPDIR:-/tmp}/photo-sorter-pg-$(echo "$ABS" | cksum | cut -d' ' -f1)")
fi

stopped=0
for base in "${CANDIDATES[@]}"; do
    data="$base/data"
    [ -s "$data/PG_VERSION" ] || continue
    if as_pg "$BINDIR/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        log "stopping $data"
        as_pg "$BINDIR/pg_ctl" -D "$data" -m fast -w -t 60 stop >&2 || log "pg_ctl stop failed for $data"
        stopped=1
    fi
    if [ "${1:-}" = "--purge" ]; then
        log "removing $base"
        rm -rf "$base"
    fi
done
[ "$stopped" -eq 1 ] || log "not running"
exit 0
