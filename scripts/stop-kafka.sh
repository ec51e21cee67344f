#!/usr/bin/env bash
# Stops the test broker started by ./scripts/start-kafka.sh (no-op when not running).
# Pass --purge to also delete its directory (the virtualenv included).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${PHOTO_SORTER_KAFKA_DIR:-$REPO/.build-kafka}"
PIDFILE="$DIR/tansu.pid"

log() { echo "stop-kafka: $*" >&2; }

if [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    pid="$(cat "$PIDFILE")"
    log "stopping Tansu (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then log "still running; sending KILL"; kill -9 "$pid" 2>/dev/null || true; fi
else
    log "not running"
fi
rm -f "$PIDFILE" "$DIR/tansu.addr"
if [ "${1:-}" = "--purge" ]; then
    log "removing $DIR"
    rm -rf "$DIR"
fi
exit 0
