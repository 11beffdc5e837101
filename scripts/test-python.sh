#!/usr/bin/env bash
# The Python package's tests: builds the package into a fresh virtual
# environment (maturin, numpy, scikit-learn and pytest from the package
# index), builds the command line it is checked against, and runs pytest.
#
#   scripts/test-python.sh            # venv in target/python-venv
#   PYTHON=python3.11 scripts/test-python.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
python=${PYTHON:-python3}
venv=${CONVEXFORMER_VENV:-$repo/target/python-venv}

echo "== Python package: virtual environment $venv"
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet maturin numpy scikit-learn pytest

echo "== Python package: pip install ./python (maturin builds the extension)"
"$venv/bin/pip" install --quiet ./python

echo "== Python package: the command line it is compared with"
cargo build --release --locked --quiet
export CONVEXFORMER_BIN="$repo/target/release/convexformer"

echo "== Python package: pytest"
# Run from the tests folder so `import convexformer` is the installed package.
cd python/tests
"$venv/bin/python" -m pytest -q -p no:cacheprovider .
