# DCD-Caffe front door; README.md explains each target.
#   make          setup + CPU build (Caffe, the DCD layers, pycaffe)
#   make test     build, then the layer gtests and the pytest suites
#   make test-fast the same without the tests marked slow (demo, caffe train, BN-Inception nets)
#   make demo     the end-to-end demo
#   make cuda     the CUDA build (compiles and links without a GPU)
SHELL := /bin/bash
JOBS ?= $(shell nproc)
BUILD_CPU := build/cpu
BUILD_CUDA := build/cuda
VENV := .venv
PY := $(VENV)/bin/python
# Extra CMake arguments, e.g. CMAKE_ARGS=-DCAFFE_SOURCE_DIR=/path/to/caffe
CMAKE_ARGS ?=
PYTEST_ARGS ?=
# pytest-xdist: the suites on $(TEST_WORKERS) processes; tests/conftest.py
# keeps each file's tests on one process (its module fixtures run once).
# One BLAS/OpenMP thread per process, waiting passively: with two worker
# processes, spinning threads of each took the cores from the other (the
# BN-Inception net tests ran 10x slower).
TEST_WORKERS ?= $(JOBS)
TEST_ENV := OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
# tools/setup.sh flags; the tests also need cuBLAS/cuRAND headers (nvcc check).
SETUP_FLAGS ?=

.PHONY: all setup build test test-fast test-layers test-python demo cuda clean help

all: build

help:
	@# The opening comment block, less its title line.
	@awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' Makefile

setup:
	@tools/setup.sh $(SETUP_FLAGS)

# Configure only when there is no cache yet or CMAKE_ARGS asks for a change;
# afterwards `cmake --build` re-runs the configure step itself when needed.
define configure
	@if [[ ! -f $(1)/CMakeCache.txt || -n "$(CMAKE_ARGS)" ]]; then \
	  cmake -S . -B $(1) -DPYTHON_EXECUTABLE=$(abspath $(PY)) $(2) $(CMAKE_ARGS); \
	fi
endef

build: setup
	$(call configure,$(BUILD_CPU),)
	cmake --build $(BUILD_CPU) -j $(JOBS)
	@tools/link_venv.sh $(BUILD_CPU)

# The nvcc check needs the cuBLAS/cuRAND wheels' headers: a build folder
# configured before they came (`make`, then `make test`) is configured again.
test-layers: build
	cmake --build $(BUILD_CPU) --target test.testbin -j $(JOBS)
	$(BUILD_CPU)/caffe/test/test.testbin
	@grep -q '^DCD_CUDA_WHEEL_DIR:PATH=.' $(BUILD_CPU)/CMakeCache.txt || cmake $(BUILD_CPU) > /dev/null
	cmake --build $(BUILD_CPU) --target dcd_cuda_check -j $(JOBS)

test-python: build
	$(TEST_ENV) $(PY) -m pytest tests -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

test: test-layers test-python
test-fast: PYTEST_ARGS += -m "not slow"
test-fast: test-layers test-python
test test-fast test-layers test-python: SETUP_FLAGS = --cuda-check

demo: build
	$(PY) tools/demo.py

cuda:
	@tools/setup.sh --cuda
	$(call configure,$(BUILD_CUDA),-DDCD_CUDA=ON)
	cmake --build $(BUILD_CUDA) -j $(JOBS)
	cmake --build $(BUILD_CUDA) --target test.testbin -j $(JOBS)

clean:
	rm -rf $(BUILD_CPU) $(BUILD_CUDA)
