#!/usr/bin/env bash
# Build pycuda against the local CUDA toolkit and install it, on a machine
# with or without a GPU driver (the tests in tests/gpu skip, saying why, where
# there is none).
#
#   tools/install_pycuda.sh [--python PY] [--from DIR]
#
# --python PY  the interpreter to install into (default: .venv/bin/python)
# --from DIR   offline: take the pycuda sdist and the wheels it needs from DIR
#              (tools/gpu_check.sh pack puts them into the device bundle)
#
# pycuda 2026.1 ships only as an sdist whose _driver module links -lcuda.
# A stub libcuda (SONAME libcuda.so.1, every cu* entry point of cuda.h as an
# empty function) is made in a temporary folder for the link and deleted
# afterwards: the module records NEEDED libcuda.so.1 and no path, so at run
# time it finds the driver's own library, and where there is none
# `import pycuda.driver` fails with "libcuda.so.1: cannot open shared object
# file", which the GPU tests report as their reason to skip.
set -euo pipefail
cd "$(dirname "$0")/.."

py=.venv/bin/python
from=""
while (($#)); do
  case "$1" in
    --python) py="$2"; shift 2 ;;
    --from) from="$(cd "$2" && pwd)"; shift 2 ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;  # the opening comment block
    *) echo "install_pycuda.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
done

# Absolute, but not through symlinks: a venv's python is one.
[[ "$py" == */* ]] && py="$(cd "$(dirname "$py")" && pwd)/$(basename "$py")"
PYCUDA_VERSION=2026.1
if "$py" -c "import pycuda, sys; sys.exit(pycuda.VERSION_TEXT != '$PYCUDA_VERSION')" 2>/dev/null; then
  echo "install_pycuda: pycuda $PYCUDA_VERSION already installed for $py"
  exit 0
fi
nvcc=$(command -v nvcc || true)
[[ -n "$nvcc" ]] || { echo "install_pycuda: nvcc not found (needs the CUDA toolkit)" >&2; exit 1; }
# The toolkit's root as nvcc itself reports it (nvcc may be a wrapper script).
cuda_root=${CUDA_HOME:-$(nvcc --dryrun -x cu -c /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ TOP=//p')}
cuda_root=$(cd "$cuda_root" && pwd -P)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pip=("$py" -m pip --disable-pip-version-check -q)
if [[ -n "$from" ]]; then
  pip_src=(--no-index --find-links "$from")
  cp "$from/pycuda-$PYCUDA_VERSION.tar.gz" "$work/"
else
  pip_src=()
fi
echo "install_pycuda: build tools and pycuda's dependencies"
"${pip[@]}" install "${pip_src[@]}" -r tools/pycuda-requirements.txt
if [[ -z "$from" ]]; then
  "${pip[@]}" download --no-deps --no-build-isolation -d "$work" "pycuda==$PYCUDA_VERSION"
fi
tar xzf "$work/pycuda-$PYCUDA_VERSION.tar.gz" -C "$work"

echo "install_pycuda: stub libcuda for the link (deleted afterwards)"
mkdir "$work/stub"
# Entry points as cuda.h declares them after its macros (cuCtxCreate ->
# cuCtxCreate_v2, ...), each defined as an empty function.
echo '#include <cuda.h>' | gcc -E -I"$cuda_root/include" -x c - \
  | grep -oE '\bcu[A-Z][A-Za-z0-9_]*[[:space:]]*\(' | tr -d '( \t' | sort -u \
  | sed 's/.*/void &(void) {}/' > "$work/stub/stub.c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$work/stub/libcuda.so" "$work/stub/stub.c"

echo "install_pycuda: building pycuda $PYCUDA_VERSION against $cuda_root (about 1.5 min on 2 cores)"
(
  cd "$work/pycuda-$PYCUDA_VERSION"
  "$py" configure.py --cuda-root="$cuda_root" --cudadrv-lib-dir="$work/stub" \
    --no-cuda-enable-curand >/dev/null
  "${pip[@]}" install --no-build-isolation --no-deps . >"$work/build.log" 2>&1 \
    || { tail -40 "$work/build.log" >&2; echo "install_pycuda: the build failed (log above)" >&2; exit 1; }
)
"$py" -c "import pycuda; print('install_pycuda: pycuda', pycuda.VERSION_TEXT, 'installed')"
