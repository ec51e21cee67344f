#!/usr/bin/env bash
# THE test command: installs what is missing (idempotent), then runs every test suite.
#
#   ./scripts/test.sh
#
# Steps, stopping at the first failure:
#   1. install-ml     scripts/install-ml.sh --with-dlib (ml-service/.venv, dlib built from source on first run: the
#                     tests run both models), the pinned test
#                     tools of e2e/requirements.txt, Debian's chromium for the browser tests, exiftool and exiv2
#                     (libimage-exiftool-perl, exiv2) that the XMP tests read sidecars with
#   2. swift-build    swift build --build-tests
#   3. postgres       scripts/start-postgres.sh (private cluster on 127.0.0.1:55432; stopped on exit)
#   4. kafka          scripts/start-kafka.sh (Tansu, a Kafka-compatible broker, in memory on a free port, and the
#                     librdkafka 2.16 it needs under .build-kafka/lib; stopped on exit)
#   5. swift-test     swift test, with PHOTO_SORTER_TEST_POSTGRES_URL and PHOTO_SORTER_TEST_KAFKA_BROKERS set,
#                     PHOTO_SORTER_REQUIRE_POSTGRES=1 and PHOTO_SORTER_REQUIRE_KAFKA=1, and .build-kafka/lib first on
#                     LD_LIBRARY_PATH (Debian's librdkafka 2.0.2 cannot talk to Tansu)
#   6. python-test    pytest ml-service/tests bench/accuracy bench/scale
#   7. e2e            pytest e2e (real ML service + real Swift service on ../shared/testdata/faces,
#                     on SQLite and on a fresh PostgreSQL database photo_sorter_e2e; the web page in headless
#                     Chromium, screenshots under e2e/out/web)
# Set PHOTO_SORTER_TEST_SKIP="e2e swift-test" (space-separated step names) to skip steps locally.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

VENV_PY="$REPO/ml-service/.venv/bin/python"
SKIP=" ${PHOTO_SORTER_TEST_SKIP:-} "
T0=$(date +%s)
TIMINGS=()
CURRENT=""
PG_STARTED=0
KAFKA_STARTED=0
KAFKA_DIR="${PHOTO_SORTER_KAFKA_DIR:-$REPO/.build-kafka}"
COUNTS_LOG="$(mktemp -t photo-sorter-test-counts.XXXXXX)"

say() { echo "==> test.sh: $*"; }

# Sums what the runners reported (XCTest's 'All tests' line, pytest's summary lines) into one line.
print_counts() {
    [ -s "$COUNTS_LOG" ] || return 0
    local passed=0 failed=0 skipped=0 n s f line
    while IFS= read -r line; do
        # "Executed 197 tests, with 0 failures" or "Executed 197 tests, with 1 test skipped and 0 failures"
        if [[ "$line" =~ Executed\ ([0-9]+)\ tests?,\ with\ (([0-9]+)\ tests?\ skipped\ and\ )?([0-9]+)\ failures? ]]; then
            n=${BASH_REMATCH[1]}; s=${BASH_REMATCH[3]:-0}; f=${BASH_REMATCH[4]}
            passed=$((passed + n - s - f)); failed=$((failed + f)); skipped=$((skipped + s))
        fi
    done < <(grep -A1 "Test Suite 'All tests'" "$COUNTS_LOG" | grep "Executed" || true)
    while IFS= read -r line; do
        [[ "$line" =~ ([0-9]+)\ passed ]] && passed=$((passed + BASH_REMATCH[1]))
        [[ "$line" =~ ([0-9]+)\ failed ]] && failed=$((failed + BASH_REMATCH[1]))
        [[ "$line" =~ ([0-9]+)\ skipped ]] && skipped=$((skipped + BASH_REMATCH[1]))
    done < <(grep -E "^=*\s*[0-9]+ (passed|failed)" "$COUNTS_LOG" | grep -E " in [0-9.]+s" || true)
    echo "tests: $passed passed, $failed failed, $skipped skipped"
}

cleanup() {
    local rc=$?
    if [ "$PG_STARTED" = 1 ]; then
        "$REPO/scripts/stop-postgres.sh" >/dev/null 2>&1 || true
    fi
    if [ "$KAFKA_STARTED" = 1 ]; then
        "$REPO/scripts/stop-kafka.sh" >/dev/null 2>&1 || true
    fi
    echo
    echo "==> test.sh: step timings"
    local t
    for t in "${TIMINGS[@]}"; do echo "    $t"; done
    echo "    total: $(( $(date +%s) - T0 ))s"
    print_counts
    rm -f "$COUNTS_LOG"
    if [ $rc -ne 0 ]; then
        echo "==> test.sh: FAILED in step '${CURRENT:-?}' (exit $rc); see the output above." >&2
    else
        echo "==> test.sh: all steps passed."
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# run_step NAME COMMAND... : runs one step, records its duration, stops the script when it fails.
run_step() {
    local name="$1"; shift
    if [[ "$SKIP" == *" $name "* ]]; then
        say "skipping step '$name' (PHOTO_SORTER_TEST_SKIP)"
        TIMINGS+=("$(printf '%-12s skipped' "$name")")
        return 0
    fi
    CURRENT="$name"
    say "step '$name': $*"
    local start rc=0
    start=$(date +%s)
    "$@" || rc=$?
    local took=$(( $(date +%s) - start ))
    if [ $rc -ne 0 ]; then
        TIMINGS+=("$(printf '%-12s %5ss  FAILED' "$name" "$took")")
        echo "==> test.sh: step '$name' failed (exit $rc) after ${took}s" >&2
        exit $rc
    fi
    TIMINGS+=("$(printf '%-12s %5ss  ok' "$name" "$took")")
    say "step '$name' passed in ${took}s"
}

if ! command -v swift >/dev/null 2>&1; then
    for d in /opt/swift/usr/bin /usr/share/swift/usr/bin; do
        if [ -x "$d/swift" ]; then export PATH="$d:$PATH"; break; fi
    done
fi
command -v swift >/dev/null 2>&1 || { echo "test.sh: ERROR: 'swift' is not on PATH (install a Swift 6 toolchain)" >&2; exit 1; }

install_ml() {
    # (set -e does not apply inside a function run as `f || rc=$?`: check each command explicitly.)
    bash "$REPO/scripts/install-ml.sh" --with-dlib || return 1
    [ -x "$VENV_PY" ] || { echo "install-ml.sh did not create $VENV_PY" >&2; return 1; }
    # The e2e tests and bench unit tests run under the ML venv's interpreter: pytest and Playwright (pinned).
    "$VENV_PY" -m pip install --quiet --disable-pip-version-check -r "$REPO/e2e/requirements.txt" || return 1
    # The browser tests drive Debian's Chromium; the XMP tests read what `xmp write` wrote with exiftool and exiv2.
    local missing=()
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    command -v exiftool >/dev/null 2>&1 || missing+=(libimage-exiftool-perl)
    command -v exiv2 >/dev/null 2>&1 || missing+=(exiv2)
    if [ "${#missing[@]}" -gt 0 ]; then
        local sudo=""
        [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" \
            || return 1
    fi
}

start_pg() {
    local out
    out="$("$REPO/scripts/start-postgres.sh")" || return 1
    PG_STARTED=1
    PG_URL="$(printf '%s\n' "$out" | tail -n 1)"
    case "$PG_URL" in postgres://*) ;; *) echo "start-postgres.sh printed no URL" >&2; return 1 ;; esac
    say "PostgreSQL at $PG_URL"
}

start_kafka() {
    local out
    out="$(PHOTO_SORTER_KAFKA_PORT="${PHOTO_SORTER_KAFKA_PORT:-0}" "$REPO/scripts/start-kafka.sh")" || return 1
    KAFKA_STARTED=1
    KAFKA_BROKERS="$(printf '%s\n' "$out" | tail -n 1)"
    case "$KAFKA_BROKERS" in *:[0-9]*) ;; *) echo "start-kafka.sh printed no broker address" >&2; return 1 ;; esac
    say "Kafka (Tansu) at $KAFKA_BROKERS"
}

swift_test() {
    local kafka_env=()
    if [ "$KAFKA_STARTED" = 1 ]; then
        # The test binary links librdkafka.so.1: the 2.16 copy under .build-kafka/lib must be the one loaded.
        local tests_bin
        tests_bin="$(ls -d "$REPO"/.build/debug/*PackageTests.xctest 2>/dev/null | head -n 1)"
        if [ -n "$tests_bin" ]; then
            LD_LIBRARY_PATH="$KAFKA_DIR/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ldd "$tests_bin" | grep librdkafka || true
        fi
        kafka_env=(PHOTO_SORTER_TEST_KAFKA_BROKERS="$KAFKA_BROKERS" PHOTO_SORTER_REQUIRE_KAFKA=1
                   PHOTO_SORTER_TEST_TANSU="$KAFKA_DIR/bin/tansu"
                   LD_LIBRARY_PATH="$KAFKA_DIR/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
    fi
    env PHOTO_SORTER_TEST_POSTGRES_URL="$PG_URL" PHOTO_SORTER_REQUIRE_POSTGRES=1 "${kafka_env[@]}" swift test 2>&1 \
        | tee -a "$COUNTS_LOG"
}

python_test() {
    "$VENV_PY" -m pytest ml-service/tests bench/accuracy bench/scale -q 2>&1 | tee -a "$COUNTS_LOG"
}

e2e_test() {
    local bin="${PHOTO_SORTER_BIN:-$REPO/.build/debug/photo-sorter}" e2e_pg=""
    [ -x "$bin" ] || { echo "photo-sorter binary not found at $bin" >&2; return 1; }
    if [ "$PG_STARTED" = 1 ]; then
        # A fresh database for the end-to-end run on PostgreSQL.
        e2e_pg="$(PHOTO_SORTER_PG_DB=photo_sorter_e2e PHOTO_SORTER_PG_FRESH=1 "$REPO/scripts/start-postgres.sh" | tail -n 1)" \
            || return 1
    fi
    # The scale-out test runs its services on Kafka too (with the librdkafka 2.16 that Tansu needs).
    PHOTO_SORTER_BIN="$bin" PHOTO_SORTER_E2E_POSTGRES_URL="$e2e_pg" PHOTO_SORTER_E2E_KAFKA_BROKERS="$KAFKA_BROKERS" \
        PHOTO_SORTER_E2E_KAFKA_LIB="$KAFKA_DIR/lib" "$VENV_PY" -m pytest e2e -q 2>&1 | tee -a "$COUNTS_LOG"
}

PG_URL=""
KAFKA_BROKERS=""
run_step install-ml  install_ml
run_step swift-build swift build --build-tests
run_step postgres    start_pg
run_step kafka       start_kafka
run_step swift-test  swift_test
run_step python-test python_test
run_step e2e         e2e_test
CURRENT=""
