#!/usr/bin/env bash
# THE main command: sort a folder of photos by person.
#
#   ./scripts/sort.sh [folder] [extra photo-sorter sort options...]
#
# Installs the ML service (scripts/install-ml.sh, idempotent; with --with-dlib when the options ask for
# `--model dlib`), builds the Swift service in release mode, then runs `photo-sorter sort <folder>` from the
# repository root, so the database is ./data/photo-sorter.sqlite unless you pass --database. Default folder:
# ../shared/testdata/faces.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
die() { echo "sort.sh: ERROR: $*" >&2; exit 1; }

if [ $# -ge 1 ] && [ "${1#-}" = "$1" ]; then
    FOLDER="$1"; shift
else
    FOLDER="$REPO/../shared/testdata/faces"
fi
[ -d "$FOLDER" ] || die "folder not found: $FOLDER"
FOLDER="$(cd "$FOLDER" && pwd)"   # absolute, resolved against the caller's directory

if ! command -v swift >/dev/null 2>&1; then
    for d in /opt/swift/usr/bin /usr/share/swift/usr/bin; do
        if [ -x "$d/swift" ]; then export PATH="$d:$PATH"; break; fi
    done
fi
command -v swift >/dev/null 2>&1 || die "'swift' is not on PATH. Install a Swift 6 toolchain for Linux and put its usr/bin on PATH (see README.md, Troubleshooting)."

# The dlib model is optional: its compile (~10 min) is only paid when this sort asks for it.
INSTALL_ARGS=()
previous=""
for arg in "$@"; do
    if [ "$arg" = "--model=dlib" ] || { [ "$previous" = "--model" ] && [ "$arg" = "dlib" ]; }; then INSTALL_ARGS=(--with-dlib); fi
    previous="$arg"
done

cd "$REPO"
echo "sort.sh: installing the ML service (scripts/install-ml.sh ${INSTALL_ARGS[*]:-})" >&2
bash scripts/install-ml.sh "${INSTALL_ARGS[@]}" >&2 || die "scripts/install-ml.sh failed (see output above)"
echo "sort.sh: building photo-sorter (release)" >&2
swift build -c release --product photo-sorter >&2 || die "swift build failed (see output above)"

exec "$REPO/.build/release/photo-sorter" sort "$FOLDER" "$@"
