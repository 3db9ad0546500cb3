#!/usr/bin/env bash
# Install the PyTorch CPU reference for `npm run bench` (Debian packages, no pip, no downloads at bench time).
# python3-torch alone links the reference netlib BLAS (~6 GFLOP/s on 2 threads); libopenblas0-pthread
# registers OpenBLAS as the libblas.so.3 alternative (~200 GFLOP/s), without which the comparison is meaningless.
# Usage: bash bench/setup_torch.sh   (as root, or with sudo available)
set -euo pipefail
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
PY="${OVR_BENCH_PYTHON:-/usr/bin/python3}"  # Debian's interpreter: python3-torch is in its dist-packages, not pyenv's
if "$PY" -c 'import torch' 2>/dev/null && dpkg -s libopenblas0-pthread >/dev/null 2>&1; then
  echo "python3-torch and libopenblas0-pthread already installed"
else
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends python3-torch python3-numpy libopenblas0-pthread
fi
# Which BLAS does libblas.so.3 resolve to?
update-alternatives --display "libblas.so.3-$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)" 2>/dev/null | head -3 || true
# Check that the optimised BLAS is active: OpenBLAS must be mapped into the process (netlib gives ~6 GFLOP/s).
"$PY" - <<'PY'
import time, torch
torch.set_num_threads(2)
n = 1024
a, b = torch.rand(n, n), torch.rand(n, n)
a @ b
t = time.perf_counter()
for _ in range(10): a @ b
dt = (time.perf_counter() - t) / 10
g = 2 * n**3 / dt / 1e9
print(f"torch {torch.__version__}: torch.mm {n} on 2 threads: {g:.1f} GFLOP/s")
libs = sorted({l.split()[-1] for l in open("/proc/self/maps") if "blas" in l.lower()})
print("BLAS mapped:", ", ".join(libs))
if not any(k in x for x in libs for k in ("openblas", "mkl", "blis")):
    raise SystemExit("torch uses the reference netlib BLAS: install libopenblas0-pthread")
if g < 30: print("warning: sgemm is slow (is the machine busy? see uptime)")
PY
