#!/usr/bin/env bash
# Put a build's Caffe tools on .venv/bin and its pycaffe into .venv's
# site-packages (a symbolic link to the build's package), so that after
# `source .venv/bin/activate` both `caffe` and `import caffe` work. The
# project's own package is installed by tools/setup.sh (pip install -e .).
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
rm -f "$site/dcd_caffe.pth"  # what earlier versions wrote
ln -sfn "$build/caffe-src/python/caffe" "$site/caffe"
