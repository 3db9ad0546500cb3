#!/usr/bin/env bash
# Creates the Python venv with Math-Verify (pinned, from PyPI) that `bench/reward_compare.ts` runs side by side
# with our verifier. Never committed; nothing downloads at bench or training time once this has run.
# Usage: bash bench/setup_math_verify.sh   → ~/.cache/ovr/venv-math-verify/bin/python
set -euo pipefail
VENV="${OVR_MATH_VERIFY_VENV:-$HOME/.cache/ovr/venv-math-verify}"
PY="${OVR_BENCH_PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  mkdir -p "$(dirname "$VENV")"
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
  'math-verify==0.9.0' 'latex2sympy2_extended==1.11.0' \
  'antlr4-python3-runtime==4.13.2' 'sympy==1.14.0' 'mpmath==1.3.0'
"$VENV/bin/python" - <<'PY'
from importlib.metadata import version
from math_verify import parse, verify
assert verify(parse("$\\frac{1}{2}$"), parse("$0.5$"))
print("math-verify", version("math-verify"), "latex2sympy2_extended", version("latex2sympy2_extended"), "sympy", version("sympy"))
PY
