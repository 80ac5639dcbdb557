#!/usr/bin/env bash
# Put a build's Caffe tools on .venv/bin and its pycaffe plus the project's
# Python package on .venv's sys.path, so that after
# `source .venv/bin/activate` both `caffe` and `import caffe` work.
#
#   tools/link_venv.sh build/cpu
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "${1:?usage: link_venv.sh BUILD_DIR}")
venv=$(realpath .venv)
tools_dir=$build/caffe/tools
[[ -x $tools_dir/caffe || -x $tools_dir/caffe.bin ]] \
  || { echo "link_venv: no caffe executable in $tools_dir; build first (make)" >&2; exit 1; }

for exe in "$tools_dir"/*; do
  [[ -f $exe && -x $exe ]] || continue
  name=$(basename "$exe")
  ln -sfn "$exe" "$venv/bin/${name%.bin}"
done

site=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
printf '%s\n%s\n' "$build/caffe-src/python" "$(pwd)/python" > "$site/dcd_caffe.pth"
