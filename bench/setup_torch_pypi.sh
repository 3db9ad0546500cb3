#!/usr/bin/env bash
# The PyTorch a user installs today, beside the Debian 1.13 + OpenBLAS reference (bench/setup_torch.sh): the
# current `torch` from PyPI (CPU use; the Linux wheel carries its CUDA libraries as nvidia-* wheels, unused here)
# in a pinned venv under ~/.cache/ovr/ (never committed). `npm run bench` runs bench/torch_ref.py with both.
# Usage: bash bench/setup_torch_pypi.sh   (prints the venv's python; pip needs pypi.org once)
set -euo pipefail
TORCH_VERSION=2.15.0
NUMPY_VERSION=2.4.6
VENV="${OVR_TORCH_VENV:-$HOME/.cache/ovr/torch-$TORCH_VERSION}"
PY="${OVR_BENCH_BASE_PYTHON:-python3}"
if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q "torch==$TORCH_VERSION" "numpy==$NUMPY_VERSION"
fi
"$VENV/bin/python" - <<'PY'
import time, torch
torch.set_num_threads(2)
n = 1024
a, b = torch.rand(n, n), torch.rand(n, n)
a @ b
t = time.perf_counter()
for _ in range(10): a @ b
dt = (time.perf_counter() - t) / 10
print(f"torch {torch.__version__} (PyPI): torch.mm {n} on 2 threads: {2 * n**3 / dt / 1e9:.1f} GFLOP/s")
PY
echo "$VENV/bin/python"
