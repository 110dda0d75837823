#!/usr/bin/env bash
# Sets up .venv with everything finetec-live needs; safe to run again.
# torch is installed first and pinned: a range that admits a newer release
# would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
if [ -f tests/js/package.json ] && command -v npm >/dev/null 2>&1; then
    # Optional: the JavaScript subscriber test; skipped when this fails.
    (cd tests/js && npm ci --silent --no-audit --no-fund >/dev/null 2>&1) \
        || echo "setup: npm install in tests/js failed; the JavaScript subscriber test will skip"
fi
