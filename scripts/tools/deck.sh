#!/usr/bin/env bash
# Install Kong's decK CLI into .services/bin (gitignored) and print its path.
#
# decK is built from its module on the Go module proxy. `go install github.com/kong/deck@V`
# cannot be used as is: the proxy serves decK v1.64.0 but not the pb33f/doctor v0.0.72 it
# pulls in through vacuum, so the module is copied and built with doctor v0.0.78 (which the
# proxy serves) pinned by a replace directive. Later decK releases need modules the proxy
# does not serve at all. Idempotent: a built binary of the wanted version is reused.
#
#   bash scripts/tools/deck.sh            # prints .../.services/bin/deck
#   DECK_VERSION=v1.64.0 bash scripts/tools/deck.sh
set -euo pipefail

DECK_VERSION="${DECK_VERSION:-v1.64.0}"
DOCTOR_VERSION="${DECK_DOCTOR_VERSION:-v0.0.78}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN_DIR="$ROOT/.services/bin"
DECK="$BIN_DIR/deck"
STAMP="$BIN_DIR/deck.version"

installed() {
    [[ -x "$DECK" && -f "$STAMP" && "$(cat "$STAMP")" == "$DECK_VERSION" ]]
}

mkdir -p "$BIN_DIR"
exec 9>"$BIN_DIR/.deck.lock"
flock 9
if installed; then
    echo "$DECK"
    exit 0
fi
if ! command -v go >/dev/null 2>&1; then
    echo "deck.sh: the go command is needed to build decK" >&2
    exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "deck.sh: building decK $DECK_VERSION (a few minutes the first time)" >&2
module_dir="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/kong/deck@$DECK_VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
if [[ -z "$module_dir" || ! -d "$module_dir" ]]; then
    echo "deck.sh: could not download github.com/kong/deck@$DECK_VERSION" >&2
    exit 1
fi
cp -r "$module_dir" "$work/deck"
chmod -R u+w "$work/deck"
cd "$work/deck"
go mod edit -replace "github.com/pb33f/doctor=github.com/pb33f/doctor@$DOCTOR_VERSION"
GOFLAGS=-mod=mod go build -trimpath -o "$DECK.tmp" . >&2
mv "$DECK.tmp" "$DECK"
echo "$DECK_VERSION" >"$STAMP"
echo "$DECK"
