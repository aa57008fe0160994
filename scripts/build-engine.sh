#!/usr/bin/env bash
# Builds node-llama-cpp's binding (the verifier's in-process engine) from the llama.cpp source the
# npm package ships, with the flags of our llama-server build, once, and caches it. Installs the
# cached build into node_modules/node-llama-cpp/llama/localBuilds, where getLlama({ build: 'never' })
# prefers it to the prebuilt binary. Prints the installed folder on stdout.
# Why: the prebuilt CPU binary evaluates batches of positions 25-35 % slower than this build
# (docs/verifier.md). DSD_LLAMA_CACHE moves the cache (default ~/.cache/dsd).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# Where node resolves node-llama-cpp from dsd (its own node_modules, or a hoisted one).
find_package='for (const d of module.paths) if (require("fs").existsSync(d + "/node-llama-cpp/package.json"))
  { console.log(d + "/node-llama-cpp"); process.exit(0); } process.exit(1);'
package="$(cd "$root" && node -e "$find_package")" || {
  echo "node-llama-cpp is not installed (run npm ci)" >&2
  exit 2
}
version="$(node -p "require('$package/package.json').version")"
llama_dir="$package/llama"
cache="${DSD_LLAMA_CACHE:-$HOME/.cache/dsd}/engine-$version-$(uname -m)"
name="$(uname -s | tr '[:upper:]' '[:lower:]')-$(node -p process.arch)"
install() {
  mkdir -p "$llama_dir/localBuilds"
  rm -rf "$llama_dir/localBuilds/$name.tmp"
  cp -r "$cache/$name" "$llama_dir/localBuilds/$name.tmp"
  rm -rf "$llama_dir/localBuilds/$name"
  mv "$llama_dir/localBuilds/$name.tmp" "$llama_dir/localBuilds/$name"
  echo "$llama_dir/localBuilds/$name"
}
if [ -f "$cache/$name/Release/llama-addon.node" ]; then install; exit 0; fi
for tool in cmake git; do
  command -v "$tool" >/dev/null || { echo "cannot build the engine: '$tool' not found" >&2; exit 2; }
done
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ -f "$cache/$name/Release/llama-addon.node" ]; then install; exit 0; fi
echo "dsd: building the verifier's engine (node-llama-cpp@$version binding) once from its bundled source" >&2
echo "dsd:   into $cache (about 7-8 minutes on 2 cores; later runs reuse it)" >&2
# GGML_NATIVE=OFF, as for llama-server: native builds crash on machines whose CPUs report AMX, and a
# cached build must run on any AVX2 machine that shares the cache.
(
  cd "$root" &&
    NODE_LLAMA_CPP_CMAKE_OPTION_GGML_NATIVE=OFF node "$package/dist/cli/cli.js" source download --gpu false \
      --noUsageExample
) >&2
# A build with custom cmake options lands in a folder named after them; getLlama() without those
# options in its environment looks for the plain platform name, so the build is installed as that.
built=""
for d in $(ls -td "$llama_dir"/localBuilds/"$name"*/ 2>/dev/null); do
  if [ -f "$d/Release/llama-addon.node" ]; then built="${d%/}"; break; fi
done
[ -n "$built" ] || { echo "build finished but no llama-addon.node under $llama_dir/localBuilds" >&2; exit 3; }
rm -rf "$cache/$name"
cp -r "$built" "$cache/$name"
[ "$built" = "$llama_dir/localBuilds/$name" ] || rm -rf "$built" "$built.lock"
# The 200 MB source checkout is only needed to build.
rm -rf "$llama_dir/llama.cpp"
echo "dsd: engine built: $cache/$name" >&2
install
