#!/usr/bin/env bash
# Builds oxbadge with the optional `otlp` feature and checks its trace export against a minimal
# OTLP/HTTP collector (tests/otlp/check.py): request spans arrive as protobuf, named and
# attributed, with no secret in them. Run by .ci/run after the other steps (it replaces
# target/debug/oxbadge with the otlp build; the next `cargo build` puts the default one back).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
python3 -c "import opentelemetry.proto" 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check opentelemetry-proto
cargo build --quiet --features otlp --bin oxbadge
python3 tests/otlp/check.py "$CARGO_TARGET_DIR/debug/oxbadge"
