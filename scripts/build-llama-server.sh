#!/usr/bin/env bash
# Builds llama-server from the llama.cpp source that the npm package node-llama-cpp ships
# (llama/gitRelease.bundle), once, and caches the binary. Prints the binary's path on stdout.
# LLAMA_SERVER_BIN overrides everything; DSD_LLAMA_CACHE moves the cache (default ~/.cache/dsd).
set -euo pipefail
if [ -n "${LLAMA_SERVER_BIN:-}" ]; then
  [ -x "$LLAMA_SERVER_BIN" ] || { echo "LLAMA_SERVER_BIN=$LLAMA_SERVER_BIN is not executable" >&2; exit 1; }
  echo "$LLAMA_SERVER_BIN"; exit 0
fi
version="${NODE_LLAMA_CPP_VERSION:-3.21.1}"
cache="${DSD_LLAMA_CACHE:-$HOME/.cache/dsd}/llama-server-$version"
bin="$cache/build/bin/llama-server"
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
for tool in npm git cmake tar; do
  command -v "$tool" >/dev/null || { echo "cannot build llama-server: '$tool' not found" >&2; exit 2; }
done
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
work="$cache/work"; rm -rf "$work"; mkdir -p "$work"
echo "dsd: building llama-server once from the llama.cpp source in node-llama-cpp@$version" >&2
echo "dsd:   into $cache (about 8-10 minutes on 2 cores; later runs reuse it)" >&2
(
  cd "$work" && npm pack --silent "node-llama-cpp@$version" >/dev/null &&
    tar -xzf node-llama-cpp-*.tgz package/llama/gitRelease.bundle
) >&2
rm -rf "$cache/src"
git clone --quiet "$work/package/llama/gitRelease.bundle" "$cache/src" >&2
# GGML_NATIVE=OFF: native builds crash on machines whose CPUs report AMX.
cmake -S "$cache/src" -B "$cache/build" -DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_CURL=OFF -DCMAKE_BUILD_TYPE=Release >&2
cmake --build "$cache/build" -j"$(nproc)" --target llama-server >&2
rm -rf "$work"
[ -x "$bin" ] || { echo "build finished but $bin is missing" >&2; exit 3; }
echo "dsd: llama-server built: $bin" >&2
echo "$bin"
