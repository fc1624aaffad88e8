#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/Cargo.toml, one after the other (never two at once), for
# SECONDS each (default 600: the 10-minute runs RELIABILITY.md records), starting from the
# committed corpus (fuzz/corpus/<target>/) plus any fixed crash inputs (fuzz/regressions/<target>/).
# New inputs the fuzzer finds go to a scratch corpus under $FUZZ_WORK, not into the repository;
# a crash stops the run with the reproducer's path (fix it, then copy the input to
# fuzz/regressions/<target>/ so the test suite replays it).
#
#   fuzz/run-all.sh [SECONDS] [TARGET...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). The project's toolchain is stable, so the build
# runs with RUSTC_BOOTSTRAP=1 (cargo-fuzz passes nightly-only flags) and `--sanitizer none`
# unless FUZZ_SANITIZER is set (e.g. `address` on a nightly toolchain). Env: CARGO_TARGET_DIR
# (default target/fuzz under the repository), FUZZ_WORK (default a temporary directory), FUZZ_JOBS
# (libFuzzer -jobs and -workers; unset: one process). Prints one line per target: runs, seconds, corpus size, outcome.
set -euo pipefail
cd "$(dirname "$0")"

SECONDS_PER_TARGET="${1:-600}"
shift || true
if [ "$#" -gt 0 ]; then
  TARGETS=("$@")
else
  mapfile -t TARGETS < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^oxbadge-fuzz$')
fi
command -v cargo-fuzz >/dev/null 2>&1 || { echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2; exit 2; }
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/../target/fuzz}"
SANITIZER="${FUZZ_SANITIZER:-none}"
WORK="${FUZZ_WORK:-$(mktemp -d)}"
mkdir -p "$WORK"

# One build of every target (release, with debug assertions and overflow checks).
cargo fuzz build --sanitizer "$SANITIZER" --release --debug-assertions

STATUS=0
for target in "${TARGETS[@]}"; do
  scratch="$WORK/corpus/$target"
  artifacts="$WORK/artifacts/$target/"
  mkdir -p "$scratch" "$artifacts"
  seeds=("corpus/$target")
  [ -d "regressions/$target" ] && seeds+=("regressions/$target")
  started=$(date +%s)
  set +e
  cargo fuzz run --sanitizer "$SANITIZER" --release --debug-assertions "$target" "$scratch" "${seeds[@]}" -- \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=30 -rss_limit_mb=4096 -max_len=65536 \
    ${FUZZ_JOBS:+-jobs=$FUZZ_JOBS -workers=$FUZZ_JOBS} \
    -artifact_prefix="$artifacts" -print_final_stats=1 >"$WORK/$target.log" 2>&1
  rc=$?
  set -e
  elapsed=$(( $(date +%s) - started ))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$WORK/$target.log" | tail -n1)
  size=$(find "$scratch" -type f | wc -l)
  if [ "$rc" -eq 0 ]; then
    echo "$target: ${runs:-?} runs in ${elapsed} s, corpus ${size} inputs, no crash"
  else
    STATUS=1
    echo "$target: FAILED after ${elapsed} s (exit $rc); reproducer(s): $(ls "$artifacts" 2>/dev/null | tr '\n' ' ')"
    tail -n 30 "$WORK/$target.log"
  fi
done
echo "logs and scratch corpora: $WORK"
exit "$STATUS"
