#!/usr/bin/env bash
# Prints a Hugging Face folder that vLLM's CPU build serves, made once from a GGUF test model
# (scripts/hf-model.py says how and why) and cached by the GGUF's content. The folder carries a
# ChatML template, as llama-server falls back to, so serving it needs no chat flag.
# Usage: scripts/hf-model.sh FILE.gguf
set -euo pipefail
[ $# -eq 1 ] && [ -f "$1" ] || { echo "usage: $0 FILE.gguf" >&2; exit 1; }
here="$(cd "$(dirname "$0")" && pwd)"
bin="$(bash "$here/vllm-env.sh")"
cache="${DSD_LLAMA_CACHE:-$HOME/.cache/dsd}/hf"
name="$(basename "$1" .gguf)"
digest="$(sha256sum "$1" | cut -c1-12)"
# The converter's own digest too: a fixed converter must not serve yesterday's folders.
tool="$(sha256sum "$here/hf-model.py" | cut -c1-8)"
out="$cache/$name-$digest-$tool"
if [ -f "$out/dsd-conversion.json" ]; then echo "$out"; exit 0; fi
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ -f "$out/dsd-conversion.json" ]; then echo "$out"; exit 0; fi
echo "dsd: converting $name to a Hugging Face folder with 32-wide heads for vLLM's CPU build" >&2
"$bin/python" "$here/hf-model.py" "$1" "$out" 2>&1 | grep -v '%|' >&2 || true
[ -f "$out/dsd-conversion.json" ] || { echo "conversion of $1 failed" >&2; exit 3; }
# Folders made by an older converter from the same GGUF are dead weight.
for old in "$cache/$name-$digest-"*; do [ "$old" = "$out" ] || rm -rf "$old"; done
echo "$out"
