#!/usr/bin/env bash
# Scale-out on one machine: PostgreSQL + a Kafka-compatible broker (Tansu) + 2 ML services + 2 photo-sorter
# services, then sorts a folder through them and prints what each part did.
#
#   ./scripts/cluster-demo.sh [folder] [--queue kafka|database] [--keep]
#
# Default folder ../shared/testdata/faces/lfw_small, default queue kafka. Everything listens on 127.0.0.1; the
# database is a fresh `photo_sorter_demo` on the private test cluster (scripts/start-postgres.sh) and the broker
# keeps its data in memory. With --keep the processes stay up (stop them with Ctrl-C); otherwise they stop at the end.
# Logs: .build-demo/*.log. On real machines run the same processes with the environment shown in the README
# ("Scale-out").
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
FOLDER="$REPO/../shared/testdata/faces/lfw_small"
QUEUE=kafka
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --queue) QUEUE="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n 2,11p "$0"; exit 0 ;;
        *) FOLDER="$1"; shift ;;
    esac
done
case "$QUEUE" in kafka|database) ;; *) echo "cluster-demo: --queue must be kafka or database" >&2; exit 2 ;; esac
[ -d "$FOLDER" ] || { echo "cluster-demo: no folder $FOLDER" >&2; exit 2; }
FOLDER="$(cd "$FOLDER" && pwd)"
LOGS="$REPO/.build-demo"
mkdir -p "$LOGS"
say() { echo "==> cluster-demo: $*" >&2; }

say "installing and building (scripts/install-ml.sh, swift build -c release)"
bash scripts/install-ml.sh >&2
swift build -c release --product photo-sorter >&2
BIN="$REPO/.build/release/photo-sorter"
PY="$REPO/ml-service/.venv/bin/python"

PIDS=()
cleanup() {
    [ "${#PIDS[@]}" -gt 0 ] && kill "${PIDS[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    [ "$QUEUE" = kafka ] && bash scripts/stop-kafka.sh >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

DB="$(PHOTO_SORTER_PG_DB=photo_sorter_demo PHOTO_SORTER_PG_FRESH=1 bash scripts/start-postgres.sh | tail -n 1)"
say "PostgreSQL: $DB"
QUEUE_ENV=(PHOTO_SORTER_QUEUE=database)
if [ "$QUEUE" = kafka ]; then
    BROKERS="$(PHOTO_SORTER_KAFKA_PORT=0 bash scripts/start-kafka.sh | tail -n 1)"
    # Tansu needs librdkafka 2.16 (see README, "Kafka"); a real Kafka broker works with Debian's library.
    QUEUE_ENV=(PHOTO_SORTER_QUEUE=kafka "PHOTO_SORTER_KAFKA_BROKERS=$BROKERS" "LD_LIBRARY_PATH=$REPO/.build-kafka/lib")
    say "Kafka (Tansu): $BROKERS"
fi

SECRET="$("$PY" -c 'import secrets; print(secrets.token_hex(16))')"
S1=$(free_port); S2=$(free_port); M1=$(free_port); M2=$(free_port)
SERVICES="http://127.0.0.1:$S1,http://127.0.0.1:$S2"
for i in 1 2; do
    port=$([ $i = 1 ] && echo "$M1" || echo "$M2")
    env PHOTO_SORTER_ML_PORT="$port" PHOTO_SORTER_ML_WORKERS=1 PHOTO_SORTER_SHARED_SECRET="$SECRET" \
        PHOTO_SORTER_SERVICE_URL="http://127.0.0.1:$S1" PHOTO_SORTER_CALLBACK_ALLOWLIST="$SERVICES" \
        PHOTO_SORTER_ALLOWED_ROOTS="$FOLDER" "$PY" -m photo_sorter_ml > "$LOGS/ml$i.log" 2>&1 &
    PIDS+=($!)
done
for i in 1 2; do
    port=$([ $i = 1 ] && echo "$S1" || echo "$S2")
    env "${QUEUE_ENV[@]}" PHOTO_SORTER_DATABASE_URL="$DB" PHOTO_SORTER_PORT="$port" PHOTO_SORTER_SHARED_SECRET="$SECRET" \
        PHOTO_SORTER_ML_URL="http://127.0.0.1:$M1,http://127.0.0.1:$M2" PHOTO_SORTER_ALLOWED_ROOTS="$FOLDER" \
        "$BIN" serve > "$LOGS/service$i.log" 2>&1 &
    PIDS+=($!)
done

wait_http() {
    local url="$1" i
    for i in $(seq 1 240); do
        curl -fsS "$url" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    echo "cluster-demo: $url did not answer; see $LOGS" >&2; exit 1
}
for p in "$M1" "$M2" "$S1" "$S2"; do wait_http "http://127.0.0.1:$p/health"; done
until curl -fsS "http://127.0.0.1:$M1/health" | grep -q '"models_loaded":true' \
   && curl -fsS "http://127.0.0.1:$M2/health" | grep -q '"models_loaded":true'; do sleep 0.5; done
say "2 ML services (:$M1, :$M2), 2 services (:$S1, :$S2), queue $QUEUE — sorting $FOLDER through service 1"

START=$(date +%s)
JOB="$(curl -fsS -X POST -H 'Content-Type: application/json' -H "X-Photo-Sorter-Secret: $SECRET" \
    -d "{\"path\": \"$FOLDER\", \"recursive\": true}" "http://127.0.0.1:$S1/ingest-folder" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["jobId"])')"
# Progress as `photo-sorter sort` shows it: redrawn in place on a terminal, otherwise a line every 5 s and at the end.
LIVE=0; [ -t 2 ] && LIVE=1
LAST_LINE=0
while true; do
    STATUS="$(curl -fsS "http://127.0.0.1:$S1/ingest-status/$JOB")"
    DONE="$(echo "$STATUS" | "$PY" -c 'import json,sys; s=json.load(sys.stdin); print(s["done"], s["processed"], s["failed"], s["inserted"])')"
    set -- $DONE
    LINE="  processed $2 / $4, failed $3"
    if [ "$LIVE" = 1 ]; then
        printf '\r\033[2K%s' "$LINE" >&2
    elif [ "$1" = True ] || [ $(( $(date +%s) - LAST_LINE )) -ge 5 ]; then
        echo "$LINE" >&2
        LAST_LINE=$(date +%s)
    fi
    [ "$1" = True ] && break
    sleep 1
done
if [ "$LIVE" = 1 ]; then echo >&2; fi
SECONDS_TAKEN=$(( $(date +%s) - START ))
"$PY" - "$M1" "$M2" "$S1" "$SECONDS_TAKEN" "$STATUS" <<'PYEOF'
import json, sys, urllib.request
m1, m2, s1, took, status = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), json.loads(sys.argv[5])
get = lambda url: json.load(urllib.request.urlopen(url, timeout=10))
persons = get(f"http://127.0.0.1:{s1}/persons?limit=1&min_photos=1")["total"]
print(json.dumps({"photos": status["inserted"], "processed": status["processed"], "failed": status["failed"],
                  "faces": status["faces"], "persons": persons, "seconds": took,
                  "ml_processed": {f":{m1}": get(f"http://127.0.0.1:{m1}/health")["processed"],
                                   f":{m2}": get(f"http://127.0.0.1:{m2}/health")["processed"]}}, indent=2))
PYEOF
if [ "$KEEP" = 1 ]; then
    say "browse http://127.0.0.1:$S1/ or http://127.0.0.1:$S2/ (same library); Ctrl-C stops everything"
    wait
fi
