#!/usr/bin/env bash
# Install what DCD-Caffe needs to build and run, and nothing twice.
#
#   tools/setup.sh              Debian build dependencies + the .venv virtualenv
#   tools/setup.sh --cuda-check also cuBLAS/cuRAND (the nvcc check of make test)
#   tools/setup.sh --cuda       also NCCL and cuDNN (make cuda)
#
# Idempotent: installed Debian packages are not touched, and the virtualenv
# is re-synced only when a requirements file changed since the last success.
set -euo pipefail
cd "$(dirname "$0")/.."

cuda=0
case "${1:-}" in
  --cuda) cuda=2 ;;
  --cuda-check) cuda=1 ;;
  "") ;;
  -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;  # the opening comment block
  *) echo "setup.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
esac

apt_packages=(
  cmake dpkg-dev patch g++ make
  libboost-filesystem-dev libboost-system-dev libboost-thread-dev libboost-python-dev
  libgflags-dev libgoogle-glog-dev libhdf5-dev liblmdb-dev libopenblas-dev
  libopencv-dev libprotobuf-dev libprotoc-dev protobuf-compiler libsnappy-dev
  python3-dev python3-venv
)

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo=()
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null || { echo "setup: need root to install: ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: Debian build dependencies present"
fi

# The virtualenv uses Debian's Python 3: Boost.Python and python3-dev, which
# pycaffe is built against, belong to it.
python=/usr/bin/python3
if ! .venv/bin/python -c "import sys; assert sys.prefix != sys.base_prefix" 2>/dev/null; then
  echo "setup: creating .venv with $python"
  rm -rf .venv
  "$python" -m venv .venv
fi

reqs=(requirements.txt)
flavour=cpu
# All files listed count in the stamp (requirements-cuda.txt includes the check's).
((cuda >= 1)) && { reqs+=(requirements-cuda-check.txt); flavour=cuda-check; }
((cuda >= 2)) && { reqs+=(requirements-cuda.txt); flavour=cuda; }
stamp=.venv/.dcd-requirements-$flavour
# pyproject.toml counts too: the project's package is installed with them.
want=$(cat "${reqs[@]}" pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ $(cat "$stamp" 2>/dev/null) != "$want" ]]; then
  echo "setup: installing Python requirements (${reqs[*]}) into .venv"
  # The contrib wheel replaces opencv-python-headless (both install cv2/);
  # keeping both lets one's uninstall break the other.
  if .venv/bin/python -m pip show -q opencv-python-headless >/dev/null 2>&1; then
    # Both go, so the requirements install contrib's cv2/ afresh.
    .venv/bin/python -m pip uninstall -y -q opencv-python-headless opencv-contrib-python-headless
  fi
  pip_args=(--disable-pip-version-check -q)
  for r in "${reqs[@]}"; do pip_args+=(-r "$r"); done
  if ! .venv/bin/python -m pip install "${pip_args[@]}" >.venv/pip-install.log 2>&1; then
    grep -v "^WARNING: Location" .venv/pip-install.log >&2
    echo "setup: pip could not install ${reqs[*]}; its log is above and in .venv/pip-install.log" >&2
    exit 1
  fi
  # The project's package `dcd` (python/dcd), editable: tools and tests import
  # it as installed; its dependencies are the pins above.
  if ! .venv/bin/python -m pip install --disable-pip-version-check -q --no-deps -e . \
      >>.venv/pip-install.log 2>&1; then
    grep -v "^WARNING: Location" .venv/pip-install.log | tail -20 >&2
    echo "setup: pip could not install the project's package (pyproject.toml)" >&2
    exit 1
  fi
  # Written last: an interrupted install is redone on the next run.
  echo "$want" > "$stamp"
else
  echo "setup: .venv is up to date ($flavour)"
fi
