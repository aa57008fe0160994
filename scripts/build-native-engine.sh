#!/usr/bin/env bash
# Builds the verifier's native engine: native/dsd-eval.c (one native call per evaluation, loaded
# through koffi) compiled against the headers of the llama.cpp commit node-llama-cpp ships, and
# linked to one libllama:
#   cpu           our llama-server build's libraries (scripts/build-llama-server.sh, cached; the
#                 fastest on a CPU: GGML_NATIVE=OFF, AVX2/FMA, like the llama-server it is measured against)
#   cpu-prebuilt  node-llama-cpp's prebuilt CPU libraries from npm (no llama.cpp build needed)
#   cuda, vulkan  node-llama-cpp's prebuilt GPU libraries from npm (@node-llama-cpp/linux-x64-cuda, -vulkan)
# Usage: build-native-engine.sh [VARIANT...] (default: cpu). Prints each built folder on stdout.
# Each folder holds libdsd-eval.so and manifest.json (the commit, the ABI, the library it was
# linked to and that library's sha256, which the verifier checks at start). Cached under
# DSD_LLAMA_CACHE (default ~/.cache/dsd); a rebuild takes a few seconds once the libraries exist.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version="${NODE_LLAMA_CPP_VERSION:-3.21.1}"
cache_root="${DSD_LLAMA_CACHE:-$HOME/.cache/dsd}"
cache="$cache_root/native-engine-$version"
shim="$root/native/dsd-eval.c"
abi="$(sed -n 's/^#define DSD_EVAL_ABI \([0-9]*\)$/\1/p' "$shim")"
command -v cc >/dev/null || { echo "cannot build the native engine: no C compiler (cc)" >&2; exit 2; }
find_package='for (const d of module.paths) if (require("fs").existsSync(d + "/" + process.argv[1] + "/package.json"))
  { console.log(d + "/" + process.argv[1]); process.exit(0); } process.exit(1);'
package_dir() { (cd "$root" && node -e "$find_package" "$1"); }

# The llama.cpp headers: the llama-server build's checkout when there, else a clone of the bundle.
headers() {
  local src="$cache_root/llama-server-$version/src"
  if [ -f "$src/include/llama.h" ]; then echo "$src"; return; fi
  src="$cache/src"
  if [ ! -f "$src/include/llama.h" ]; then
    local nlc
    nlc="$(package_dir node-llama-cpp)" || { echo "node-llama-cpp is not installed (run npm ci)" >&2; exit 2; }
    echo "dsd: extracting llama.cpp's headers from node-llama-cpp@$version (seconds)" >&2
    rm -rf "$src.tmp" && git clone --quiet "$nlc/llama/gitRelease.bundle" "$src.tmp" >&2 && mv "$src.tmp" "$src"
  fi
  echo "$src"
}

# Prints "libdir llama-file ggml-file backend-dir" for a variant.
libraries() {
  case "$1" in
    cpu)
      local bin
      bin="$(bash "$root/scripts/build-llama-server.sh")"
      echo "$(dirname "$bin") libllama.so libggml.so -"
      ;;
    cpu-prebuilt | cuda | vulkan)
      local pkg="@node-llama-cpp/linux-x64" dir suffix=""
      [ "$1" = cpu-prebuilt ] || { pkg="$pkg-$1"; suffix=".$1"; }
      dir="$(package_dir "$pkg")" || {
        echo "$pkg is not installed (npm installs it where the platform allows)" >&2
        exit 2
      }
      dir="$(ls -d "$dir"/bins/*/ | head -n 1)"
      echo "${dir%/} libllama$suffix.v0.4.0.so libggml$suffix.v0.4.0.so ${dir%/}"
      ;;
    *) echo "unknown variant '$1' (cpu, cpu-prebuilt, cuda, vulkan)" >&2; exit 2 ;;
  esac
}

build() {
  local variant="$1" out="$cache/$1" src libdir llama ggml backends commit sha
  read -r libdir llama ggml backends <<<"$(libraries "$variant")"
  [ -f "$libdir/$llama" ] || { echo "$libdir/$llama not found" >&2; exit 3; }
  sha="$(sha256sum "$libdir/$llama" | cut -d' ' -f1)"
  # Cached when linked to this very library (path and contents) and newer than the shim's source.
  if [ -f "$out/libdsd-eval.so" ] && [ -f "$out/manifest.json" ] && [ "$out/libdsd-eval.so" -nt "$shim" ] &&
    grep -q "\"$sha\"" "$out/manifest.json" && grep -qF "\"$libdir/$llama\"" "$out/manifest.json"; then
    echo "$out"; return
  fi
  src="$(headers)"
  commit="$(git -C "$src" rev-parse HEAD 2>/dev/null || echo unknown)"
  mkdir -p "$out"
  echo "dsd: compiling the native verifier engine ($variant) against $libdir/$llama" >&2
  cc -std=c11 -O2 -fPIC -shared -Wall -Wextra -o "$out/libdsd-eval.so.tmp" "$shim" \
    -I"$src/include" -I"$src/ggml/include" -DDSD_LLAMA_COMMIT="\"$commit\"" \
    -L"$libdir" -l:"$llama" -l:"$ggml" -l:libggml-base.so -Wl,-rpath,"$libdir" -Wl,--allow-shlib-undefined -lm
  mv "$out/libdsd-eval.so.tmp" "$out/libdsd-eval.so"
  [ "$backends" = - ] && backends=""
  cat >"$out/manifest.json" <<EOF
{"abi": $abi, "variant": "$variant", "llamaCommit": "$commit", "nodeLlamaCpp": "$version",
 "library": "$libdir/$llama", "librarySha256": "$sha", "backendDir": "$backends"}
EOF
  echo "$out"
}

[ $# -gt 0 ] || set -- cpu
for v in "$@"; do build "$v"; done
