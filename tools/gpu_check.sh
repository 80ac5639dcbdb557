#!/usr/bin/env bash
# The on-device checks of the CUDA build, in one script (docs/GPU.md).
#
#   tools/gpu_check.sh pack [--build build/cuda] [--bundle build/gpu_bundle]
#       here, after `make cuda`: gathers what the GPU machine needs into one
#       folder and one file to carry, build/gpu_bundle.tar.xz: the caffe
#       binary, the gtest binary, libcaffe and the shared libraries they use
#       that such a machine lacks (stripped; GDAL and GDCM, which OpenCV's
#       codecs link but Caffe never calls, as stand-ins), the CUDA-build
#       pycaffe, pycuda's sdist and wheels, a sample video, build_info.json,
#       and python311/: the Python pycaffe was built for (Debian's 3.11, the
#       one its Boost.Python links), its standard library and the packages
#       `import caffe` and the parity test need (numpy, protobuf, six,
#       pytest), so that the pycaffe step runs on a machine whose own
#       Python is another version (see pack-python).
#
#   tools/gpu_check.sh pack-python --bundle DIR [--build build/cpu]
#       only that interpreter, into DIR/python311, with the build's pycaffe
#       in DIR/python (a CPU build checks it here:
#       env -i DIR/python311/bin/pycaffe-python -c "import caffe").
#       CUDA's own libraries (cudart, cuBLAS, cuRAND, cuDNN, NCCL) are not
#       packed: the run step finds NVIDIA's wheels there.
#
#   tools/gpu_check.sh run [--bundle build/gpu_bundle[.tar.xz]] [--out DIR] [--python PY]
#                          [--pycaffe-python PY311] [--iter-size N] [--only LIST]
#                          [--batch-sizes "1 8 32"] [--iters N] [--step-timeout S]
#       on a machine with a GPU: runs every check and writes to DIR (default:
#       $OUT, else gpu_check_out) summary.json (one record per step), the
#       measurements' JSON files and gpu_check_logs.tar.gz (every log and
#       record); prints one line per step, in this order:
#         0. environment.json: device, driver, NVIDIA wheels, the bundle's build
#         1. the layer gtests, CPU and GPU (incl. GPU-vs-CPU parity), and
#            Caffe's own tests of the layers with cuDNN versions (CuDNN*:
#            convolution, deconvolution, pooling, ReLU/neuron, softmax);
#            gtests.xml and its counts in gtests.json
#         2. Table 9 through `caffe time` (CUDA events, TEST phase, per-layer
#            times and the cuDNN algorithms picked), three ways: cuDNN (the
#            build's default), engine CAFFE in the same build, and BN folded
#            by tools/fold_bn.py (step "fold"; skipped while the tool is
#            missing); then the layers at Table 9's size (C=64, 224x224,
#            d=6, N=1 and 8)
#         3. 20 iterations of `caffe train` of the UCF101 motion solver on
#            generated frames (loss finite and falling), and with NCCL on all
#            GPUs when there are several; then (step "speed") seconds per
#            iteration of the static and motion solvers with partial BN as
#            generated (--speed-iters iterations, iter_size --iter-size)
#         4. pycuda: built from the bundle, then tests/gpu (kernels against
#            the numpy reference, each backward 50x bit-identical), and the
#            warp's old and new gradient kernels side by side (CUDA events)
#         5. the pycaffe GPU-vs-CPU parity test, with the bundle's
#            python311/bin/pycaffe-python (--pycaffe-python PY: another
#            Python that imports the bundled pycaffe)
#       --python PY: the device's Python for steps 2-4 (default python3).
#       --only LIST: some of gtests,bench,fold,train,speed,pycuda,parity
#       (default: all), to rerun part of the checks within a device
#       session's time.
#       --batch-sizes "B ...": Table 9's batch sizes (default "1 8 32").
#       --iters N: `caffe time` iterations per net and batch (default 20).
#       --speed-iters N: iterations of each timed `caffe train` (default 10).
#       --fold-python PY: the Python that runs tools/fold_bn.py (default:
#       --pycaffe-python if given, else --python).
#       --step-timeout S: stop a step after S seconds (default 240). DIR is
#       brought up to date after every step, so a run cut short by the
#       device's limit still returns the steps it finished.
#
# Exit status: 0 when no step failed. Nothing in it reports a figure it did
# not measure; a step that cannot run says why and counts as skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

# Help: the opening comment block, from the line after the shebang to the first line of code.
usage() { awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; }
cmd=${1:-}
[[ -n "$cmd" ]] && shift
build=build/cuda
bundle=build/gpu_bundle
out=${OUT:-gpu_check_out}
py=python3
pycaffe_py=""
iter_size=4
only=gtests,bench,fold,train,speed,pycuda,parity
step_timeout=240
batch_sizes="1 8 32"
bench_iters=20
speed_iters=10
fold_py=""
# The BN-folding tool (DCD_FOLD_BN names another, e.g. for a test).
fold_tool=${DCD_FOLD_BN:-tools/fold_bn.py}
while (($#)); do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --bundle) bundle=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --python) py=$2; shift 2 ;;
    --pycaffe-python) pycaffe_py=$2; shift 2 ;;
    --iter-size) iter_size=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --step-timeout) step_timeout=$2; shift 2 ;;
    --batch-sizes) batch_sizes=$2; shift 2 ;;
    --iters) bench_iters=$2; shift 2 ;;
    --speed-iters) speed_iters=$2; shift 2 ;;
    --fold-python) fold_py=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_check.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
done

# ------------------------------------------------------------------- pack --
# pack_python DEST: the venv's interpreter (Debian's Python, the version
# Boost.Python and so _caffe.so are built for), its standard library less
# tests, GUI and tooling, and the site packages pycaffe and the parity test
# import, plus bin/pycaffe-python, which runs it on these alone. Carrying
# the interpreter instead of building pycaffe on the GPU machine: there is
# no Boost.Python for that machine's Python to build against.
pack_python() {
  local dest=$1 ver base site pkg
  ver=$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])') || exit 1
  base=$(.venv/bin/python -c 'import sys; print(sys.base_prefix)')
  site=$(.venv/bin/python -c 'import numpy, os; print(os.path.dirname(os.path.dirname(numpy.__file__)))')
  rm -rf "$dest" && mkdir -p "$dest/bin" "$dest/lib" "$dest/site"
  cp -L "$base/bin/python$ver" "$dest/bin/python3"
  tar -C "$base/lib" --exclude="python$ver/test" --exclude="python$ver/idlelib" \
    --exclude="python$ver/tkinter" --exclude="python$ver/turtledemo" \
    --exclude="python$ver/ensurepip" --exclude="python$ver/lib2to3" \
    --exclude="python$ver/config-*" --exclude="python$ver/lib-dynload/_tkinter*" \
    --exclude="__pycache__" --exclude="python$ver/dist-packages" -cf - "python$ver" |
    tar -C "$dest/lib" -xf - || exit 1
  # What `import caffe` (numpy, protobuf, six) and pytest need; numpy's own
  # tests left out.
  # (with their dist-info: pytest looks its plugins up by metadata)
  for pkg in numpy numpy.libs google six.py pytest _pytest pluggy iniconfig packaging \
             pytest_timeout.py py.py numpy-*.dist-info protobuf-*.dist-info six-*.dist-info \
             pytest-[0-9]*.dist-info pytest_timeout-*.dist-info pluggy-*.dist-info \
             iniconfig-*.dist-info packaging-*.dist-info; do
    for f in "$site"/$pkg; do
      [[ -e "$f" ]] && cp -r "$f" "$dest/site/"
    done
  done
  find "$dest/site" \( -name tests -o -name __pycache__ \) -type d -prune -exec rm -rf {} +
  printf '%s\n' '#!/bin/sh' \
    '# The carried Python on its own standard library and packages, with the' \
    "# bundle's pycaffe (../../python) first on the path." \
    'here=$(cd "$(dirname "$0")/.." && pwd)' \
    'PYTHONHOME=$here PYTHONNOUSERSITE=1 \' \
    'PYTHONPATH="$here/site:$(dirname "$here")/python${PYTHONPATH:+:$PYTHONPATH}" \' \
    '  exec "$here/bin/python3" "$@"' > "$dest/bin/pycaffe-python"
  chmod +x "$dest/bin/pycaffe-python"
}

# pack-python: the interpreter alone, with a build's pycaffe (checkable here
# on a CPU build).
pack_python_only() {
  [[ "$build" == build/cuda && ! -d build/cuda && -d build/cpu ]] && build=build/cpu
  [[ -f "$build/caffe-src/python/caffe/_caffe.so" ]] || {
    echo "gpu_check pack-python: no pycaffe in $build (run make or make cuda)" >&2; exit 1; }
  mkdir -p "$bundle/python" "$bundle/lib"
  rm -rf "$bundle/python/caffe"
  cp -rL "$build/caffe-src/python/caffe" "$bundle/python/"
  pack_python "$bundle/python311"
  PYTHONPATH=python .venv/bin/python -m dcd.perf.gpu_check libs --out "$bundle/lib" \
    "$bundle/python311/bin/python3" "$bundle/python/caffe/_caffe.so" || exit 1
  echo "gpu_check pack-python: $bundle/python311 ($(du -sh "$bundle/python311" | cut -f1)); try:"
  echo "  env -i LD_LIBRARY_PATH=$bundle/lib $bundle/python311/bin/pycaffe-python -c 'import caffe'"
}

pack() {
  local caffe_bin="$build/caffe/tools/caffe" testbin="$build/caffe/test/test.testbin"
  [[ -x "$caffe_bin" && -x "$testbin" ]] || {
    echo "gpu_check pack: no $caffe_bin or $testbin: run 'make cuda' first" >&2; exit 1; }
  grep -q "^CPU_ONLY:BOOL=OFF" "$build/CMakeCache.txt" || {
    echo "gpu_check pack: $build is not a CUDA build" >&2; exit 1; }
  local partial="$bundle.partial"
  rm -rf "$partial"
  mkdir -p "$partial"/{bin,lib,python,wheels,data}
  cp -L "$caffe_bin" "$testbin" "$partial/bin/"
  cp -rL "$build/caffe-src/python/caffe" "$partial/python/"
  find "$partial/python" -name "*.pyc" -delete
  # Every library they load that a GPU machine lacks (dcd.perf.gpu_check.SYSTEM_LIBS
  # and STUBBED_LIBS say which are not packed as they are).
  pack_python "$partial/python311"
  PYTHONPATH=python .venv/bin/python -m dcd.perf.gpu_check libs --out "$partial/lib" \
    "$partial/bin/caffe" "$partial/bin/test.testbin" "$partial/python/caffe/_caffe.so" \
    "$partial/python311/bin/python3" || exit 1
  strip --strip-unneeded "$partial"/bin/* "$partial"/lib/* "$partial"/python/caffe/_caffe.so 2>/dev/null
  # pycuda for the device's Python (3.12 unless GPU_PYTHON_VERSION says otherwise).
  local pyver=${GPU_PYTHON_VERSION:-3.12}
  .venv/bin/python -m pip download -q --disable-pip-version-check --no-deps \
    -d "$partial/wheels" pycuda==2026.1 >/dev/null || exit 1
  .venv/bin/python -m pip download -q --disable-pip-version-check --only-binary=:all: \
    --python-version "$pyver" --implementation cp --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$partial/wheels" -r tools/pycuda-requirements.txt >/dev/null || exit 1
  local video
  video=$(PYTHONPATH=python .venv/bin/python -c "
from dcd.data.video_net import sample_video_dir; print(sample_video_dir() / 'bikes.mp4')")
  cp "$video" "$partial/data/"
  PYTHONPATH=python .venv/bin/python -c "import json
from dcd.caffeio.buildinfo import build_info_from_cache
info = build_info_from_cache('$build/CMakeCache.txt')
info['build_dir'] = '$build'
json.dump(info, open('$partial/build_info.json', 'w'), indent=2)"
  rm -rf "$bundle"
  mv "$partial" "$bundle"
  # One compressed file to carry (the carried tree may hold 64 MiB in all).
  tar -C "$(dirname "$bundle")" -cf - "$(basename "$bundle")" | xz -6 -T0 > "$bundle.tar.xz.partial"
  mv "$bundle.tar.xz.partial" "$bundle.tar.xz"
  echo "gpu_check pack: $bundle ($(du -sh "$bundle" | cut -f1), $(ls "$bundle/lib" | wc -l) libraries)"
  du -sh "$bundle"/* | sed 's/^/  /'
  echo "gpu_check pack: $bundle.tar.xz ($(du -h "$bundle.tar.xz" | cut -f1)): carry it to the GPU"
  echo "machine and run there: tools/gpu_check.sh run --bundle $bundle.tar.xz"
}

# -------------------------------------------------------------------- run --
step_no=0
# record NAME STATUS SECONDS NOTE: one step_NN_NAME.json
record() {
  step_no=$((step_no + 1))
  "$py" - "$work" "$step_no" "$@" <<'EOF'
import json, sys
out, no, name, status, seconds, note = sys.argv[1:7]
with open(f"{out}/step_{int(no):02d}_{name}.json", "w") as f:
    json.dump({"name": name, "status": status, "seconds": float(seconds), "note": note}, f)
EOF
  echo "[gpu_check] $1: $2 ($3 s) $4"
}

# sync_out: the measurements so far and one archive of every log and
# record into $out, after each step, so that a run stopped by the device's
# time limit still returns what it finished.
RESULT_FILES="summary.json environment.json gtests.xml gtests.json table9_cudnn.json
              table9_nocudnn.json table9_folded.json layers_224.json warp_backward.json
              train_gpu_0.json train_speed_static.json train_speed_motion.json"
sync_out() {
  local f
  "$py" -m dcd.perf.gpu_check summary --out "$work" > /dev/null 2>&1
  for f in $RESULT_FILES; do
    [[ -f "$work/$f" ]] && cp "$work/$f" "$out/"
  done
  tar -C "$work" --exclude=train_work -czf "$out/gpu_check_logs.tar.gz.partial" . &&
    mv "$out/gpu_check_logs.tar.gz.partial" "$out/gpu_check_logs.tar.gz"
}

# run_step NAME NOTE COMMAND...: runs it (at most $step_timeout s) with its
# output in NAME.log.
run_step() {
  local name=$1 note=$2; shift 2
  local start=$SECONDS
  echo "[gpu_check] $name: $*"
  timeout "$step_timeout" "$@" > "$work/$name.log" 2>&1
  local rc=$?
  tail -n 5 "$work/$name.log" | sed 's/^/    /'
  if ((rc == 0)); then
    record "$name" passed $((SECONDS - start)) "$note"
  elif ((rc == 124)); then
    record "$name" failed $((SECONDS - start)) "stopped after $step_timeout s; $note (see $name.log)"
  else
    record "$name" failed $((SECONDS - start)) "exit $rc; $note (see $name.log)"
  fi
  sync_out
}

wanted() { [[ ",$only," == *",$1,"* ]]; }

run() {
  mkdir -p "$out"
  out=$(cd "$out" && pwd)
  # Logs, records and the training data go to a scratch folder; $out gets
  # the summary, the measurements and one archive of the rest (the device
  # tool returns at most 8 files).
  work=${TMPDIR:-/tmp}/dcd_gpu_check
  rm -rf "$work" && mkdir -p "$work"
  if [[ -f "$bundle" && "$bundle" == *.tar.xz ]]; then
    local unpacked=${TMPDIR:-/tmp}/dcd_gpu_bundle
    rm -rf "$unpacked" && mkdir -p "$unpacked"
    tar -C "$unpacked" -xJf "$bundle" || { echo "gpu_check run: cannot unpack $bundle" >&2; exit 1; }
    bundle=$(ls -d "$unpacked"/*/ | head -1)
  fi
  bundle=$(cd "$bundle" 2>/dev/null && pwd) || {
    echo "gpu_check run: no bundle at $bundle (tools/gpu_check.sh pack makes it)" >&2; exit 1; }
  command -v "$py" >/dev/null || { echo "gpu_check run: no $py" >&2; exit 1; }
  local start=$SECONDS
  # CUDA's libraries from the machine's NVIDIA wheels and toolkit.
  local wheel_libs
  wheel_libs=$("$py" -c "import glob, nvidia, os
print(':'.join(sorted({os.path.dirname(p) for d in nvidia.__path__
                       for p in glob.glob(os.path.join(d, '*', 'lib', 'lib*.so*'))})))" 2>/dev/null)
  export LD_LIBRARY_PATH="$bundle/lib:${wheel_libs}:${CUDA_HOME:-/usr/local/cuda}/lib64:${LD_LIBRARY_PATH:-}"
  export PYTHONPATH="$REPO/python:${PYTHONPATH:-}"
  export DCD_CAFFE_BIN="$bundle/bin/caffe" DCD_SAMPLE_VIDEO="$bundle/data/bikes.mp4"
  export PYTHONUNBUFFERED=1 DCD_REQUIRE_GPU=1
  { nvidia-smi || true; echo; echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"; echo;
    ldd "$bundle/bin/caffe"; } > "$work/environment.log" 2>&1
  if grep -q "not found" <(ldd "$bundle/bin/caffe" "$bundle/bin/test.testbin" 2>&1); then
    record environment failed $((SECONDS - start)) \
      "libraries not found: $(ldd "$bundle/bin/caffe" "$bundle/bin/test.testbin" | grep 'not found' | awk '{print $1}' | sort -u | tr '\n' ' ')"
  else
    record environment passed $((SECONDS - start)) "$(nvidia-smi -L 2>/dev/null | head -1)"
  fi
  "$py" -m dcd.perf.gpu_check environment --out "$work" --bundle "$bundle" >> "$work/environment.log" 2>&1
  sync_out
  local ngpu
  ngpu=$(nvidia-smi -L 2>/dev/null | grep -c "^GPU" || true)

  # 1. gtests (CPU and GPU variants, the GPU-vs-CPU parity test, Caffe's
  # CuDNN* tests).
  wanted gtests && run_step gtests "$(basename "$bundle")/bin/test.testbin" \
    "$bundle/bin/test.testbin" --gtest_output="xml:$work/gtests.xml"
  if wanted gtests && [[ -f "$work/gtests.xml" ]]; then
    "$py" -m dcd.perf.gpu_check gtests --xml "$work/gtests.xml" --out "$work" >> "$work/gtests.log" 2>&1
    tail -n 1 "$work/gtests.log" | sed 's/^/    /'
    sync_out
  fi

  # Then the measurements, the training run and, last, pycuda (its build
  # from source is the longest step and the least needed: the gtests run
  # the same kernel bodies).
  # 2. benchmarks: Table 9 with and without cuDNN and with BN folded, the
  # layers at 224x224. pycaffe's forward is timed beside where this Python
  # imports it (else the JSON says why not).
  local engine tag
  wanted bench && for engine in default CAFFE; do
    tag=$([[ $engine == CAFFE ]] && echo nocudnn || echo cudnn)
    run_step "table9_$tag" "caffe time, engine $engine" \
      "$py" tools/benchmark.py --caffe-time --gpu 0 --engine "$engine" --iters "$bench_iters" \
      --batch-sizes $batch_sizes --no-progress --pycaffe --json "$work/table9_$tag.json"
  done
  if ! wanted fold; then
    :
  elif [[ ! -f "$fold_tool" ]]; then
    record table9_folded skipped 0 "skipped: $fold_tool missing"
  else
    local table9_nets
    table9_nets=$("$py" -c "from dcd.perf.nets import DEFAULT_NETS
print(' '.join(str(n) for n in DEFAULT_NETS))")
    run_step fold_bn "tools/fold_bn.py on random weights of the Table 9 nets" \
      "$py" -m dcd.perf.gpu_check fold --caffe "$bundle/bin/caffe" --out "$work/folded" --tool "$fold_tool" \
      --python "${fold_py:-${pycaffe_py:-$py}}" $table9_nets
    if [[ -n "$(ls "$work/folded/timed" 2>/dev/null)" ]]; then
      run_step table9_folded "caffe time, BN folded, default engine" \
        "$py" tools/benchmark.py --caffe-time --gpu 0 --iters "$bench_iters" \
        --nets "$work"/folded/timed/*.prototxt --batch-sizes $batch_sizes --no-progress \
        --json "$work/table9_folded.json"
    else
      record table9_folded skipped 0 "no folded nets (see fold_bn.log)"
    fi
  fi
  wanted bench && run_step layers_224 "caffe time, C=64 224x224 d=6 N=1,8" \
    "$py" tools/benchmark_layers.py --caffe-time --gpu 0 --json "$work/layers_224.json"

  # 3. caffe train, one GPU and, with several, all of them through NCCL.
  wanted train && run_step train_gpu0 "motion solver, 20 iterations, iter_size $iter_size" \
    "$py" -m dcd.perf.gpu_check train --caffe "$bundle/bin/caffe" --out "$work" --gpu 0 \
    --iter-size "$iter_size"
  if ! wanted train; then
    :
  elif ((ngpu > 1)); then
    run_step train_gpu_all "motion solver, NCCL on $ngpu GPUs" \
      "$py" -m dcd.perf.gpu_check train --caffe "$bundle/bin/caffe" --out "$work" --gpu all \
      --iter-size "$iter_size"
  else
    record train_gpu_all skipped 0 "one GPU: NCCL needs several"
  fi
  # Seconds per iteration as the solvers train (partial BN as generated).
  local solver
  wanted speed && for solver in static motion; do
    run_step "train_speed_$solver" "$solver solver, $speed_iters iterations, iter_size $iter_size" \
      "$py" -m dcd.perf.gpu_check train --caffe "$bundle/bin/caffe" --out "$work" --gpu 0 \
      --solver "$solver" --frozen-bn --iters "$speed_iters" --iter-size "$iter_size"
  done

  # 4. pycuda kernels, and the warp gradient's old and new kernels timed.
  start=$SECONDS
  if ! wanted pycuda; then
    :
  elif timeout "$step_timeout" tools/install_pycuda.sh --python "$py" --from "$bundle/wheels" \
      > "$work/pycuda_install.log" 2>&1; then
    record pycuda_install passed $((SECONDS - start)) "$(tail -1 "$work/pycuda_install.log")"
    run_step pycuda_tests "tests/gpu (random + real frames, 50x determinism)" \
      "$py" -m pytest tests/gpu -v -p no:cacheprovider --junitxml="$work/pycuda_tests.xml"
    wanted bench && run_step warp_backward "old vs new warp gradient to F" \
      "$py" -m dcd.layers.gpu_kernels --json "$work/warp_backward.json"
  else
    record pycuda_install failed $((SECONDS - start)) "see pycuda_install.log"
  fi

  # 5. pycaffe parity (a Python that imports the bundled pycaffe).
  if ! wanted parity; then
    :
  else
    # The bundle's own interpreter unless --pycaffe-python names another.
    [[ -z "$pycaffe_py" && -x "$bundle/python311/bin/pycaffe-python" ]] &&
      pycaffe_py="$bundle/python311/bin/pycaffe-python"
    if [[ -n "$pycaffe_py" ]]; then
      PYTHONPATH="$bundle/python:$PYTHONPATH" run_step pycaffe_parity \
        "tests/test_dcd_layers_pycaffe.py -k gpu, with $pycaffe_py" \
        "$pycaffe_py" -m pytest tests/test_dcd_layers_pycaffe.py -k gpu -v -p no:cacheprovider
    else
      record pycaffe_parity skipped 0 \
        "a bundle without python311/ needs --pycaffe-python (the Python pycaffe was built for); the gtest DcdGpuParityTest checks the same in C++"
    fi
  fi

  "$py" -m dcd.perf.gpu_check summary --out "$work"
  local rc=$?
  sync_out
  echo "[gpu_check] results in $out: $(ls "$out" | tr '\n' ' ')"
  return $rc
}

case "$cmd" in
  pack) pack ;;
  pack-python) pack_python_only ;;
  run) run ;;
  -h|--help|"") usage; [[ -n "$cmd" ]] ;;
  *) echo "gpu_check.sh: unknown command '$cmd' (pack or run; try --help)" >&2; exit 2 ;;
esac
