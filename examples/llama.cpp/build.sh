#!/bin/sh
# build.sh - unpack the pinned llama.cpp snapshot into build/llama.cpp/, apply
# the libfasa patch, build the tools that use it (linking this repository's
# build/libfasa.a) and convert the shared models to GGUF.
#
#   sh examples/llama.cpp/build.sh [TARBALL]     (from the repository root;
#                                                 `make llamacpp` runs it)
# Environment: LLAMACPP_TARGETS (cmake targets), LLAMACPP_MODELS (model dirs),
# PYTHON (needs numpy), JOBS (default 2).
set -eu

ROOT=$(pwd)
HERE=$ROOT/examples/llama.cpp
TARBALL=${1:-$ROOT/../shared/third_party/llama.cpp-c392e50.tar.xz}
OUT=$ROOT/build/llama.cpp
SRC=$OUT/llama.cpp
BLD=$OUT/cmake
PYTHON=${PYTHON:-/usr/bin/python3}
JOBS=${JOBS:-2}
TARGETS=${LLAMACPP_TARGETS:-llama-cli llama-perplexity llama-server llama-batched-bench llama-bench llama-fasa-tool}
MODELS=${LLAMACPP_MODELS:-$ROOT/../shared/models/llama-28m $ROOT/../shared/models/llama-32m-16k}

[ -f "$TARBALL" ] || { echo "build.sh: $TARBALL not found" >&2; exit 1; }
[ -f "$ROOT/build/libfasa.a" ] || { echo "build.sh: build/libfasa.a missing (run make first)" >&2; exit 1; }
mkdir -p "$OUT"

# Files a patch touches, as paths inside the tarball.
patched_files() { sed -n 's|^+++ b/|llama.cpp/|p' "$1"; }

# Unpack once; when the patch changes, restore only the files either version
# touches, so that the rebuild recompiles little.
stamp=$(cat "$TARBALL.sha256" 2>/dev/null || sha256sum "$TARBALL" | cut -c1-16)-$(sha256sum "$HERE/llama.cpp.patch" | cut -c1-16)
if [ "$(cat "$OUT/stamp" 2>/dev/null)" != "$stamp" ]; then
    if [ -d "$SRC" ] && [ -f "$OUT/applied.patch" ]; then
        files=$( (patched_files "$OUT/applied.patch"; patched_files "$HERE/llama.cpp.patch") | sort -u)
        # shellcheck disable=SC2086
        tar -xJf "$TARBALL" -C "$OUT" $files
    else
        rm -rf "$SRC"
        tar -xJf "$TARBALL" -C "$OUT"
    fi
    (cd "$SRC" && patch -p1 -s < "$HERE/llama.cpp.patch")
    cp "$HERE/llama.cpp.patch" "$OUT/applied.patch"
    echo "$stamp" > "$OUT/stamp"
fi

if [ ! -f "$BLD/CMakeCache.txt" ]; then
    cmake -S "$SRC" -B "$BLD" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
        -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_FASA_DIR="$HERE" -DLLAMA_FASA_INCLUDE="$ROOT/include" \
        -DLLAMA_FASA_LIB="$ROOT/build/libfasa.a" > "$OUT/configure.log" 2>&1 ||
        { tail -30 "$OUT/configure.log" >&2; exit 1; }
fi
# shellcheck disable=SC2086
cmake --build "$BLD" -j "$JOBS" --target $TARGETS > "$OUT/build.log" 2>&1 ||
    { grep -E 'error|Error' "$OUT/build.log" | head -30 >&2; exit 1; }

mkdir -p "$OUT/models"
for m in $MODELS; do
    name=$(basename "$m")
    gguf=$OUT/models/$name-f32.gguf
    [ -d "$m" ] || continue
    if [ ! -f "$gguf" ] || [ "$HERE/convert.py" -nt "$gguf" ]; then
        "$PYTHON" "$HERE/convert.py" --gguf-py "$SRC/gguf-py" "$m" "$gguf.tmp" > /dev/null
        mv "$gguf.tmp" "$gguf"
    fi
done
echo "build.sh: llama.cpp tools in $BLD/bin, models in $OUT/models"
