#!/usr/bin/env bash
# Longer crash-safety run against the release binary: SIGKILL the server at random moments under
# concurrent issuance, batch, revocation and suspension load, restart on the same database, and audit
# (see tests/api/crash.rs). The test suite runs the same test with 20 kills against the debug binary.
#
#   tests/crash/run.sh                 # 200 kills on SQLite
#   KILLS=50 tests/crash/run.sh        # fewer
#   OXBADGE_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432 tests/crash/run.sh   # PostgreSQL
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/oxbadge/target}"
cargo build --release --bin oxbadge
# A private copy: a shared target directory may be rebuilt from another checkout meanwhile.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$CARGO_TARGET_DIR/release/oxbadge" "$work/oxbadge"
export OXBADGE_CRASH_BIN="$work/oxbadge" OXBADGE_TEST_BIN="$work/oxbadge"
export OXBADGE_CRASH_KILLS="${KILLS:-200}"
echo "crash run: $OXBADGE_CRASH_KILLS SIGKILLs against $OXBADGE_CRASH_BIN on ${OXBADGE_TEST_DATABASE_URL:-SQLite}"
cargo test --test api crash:: -- --nocapture --test-threads 1
