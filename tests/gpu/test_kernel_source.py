"""The pycuda kernel module (dcd.layers.gpu_kernels) compiles with nvcc against the
current dcd_kernels.hpp: runs without a GPU, so CI catches a kernel body
whose signature drifted from what the GPU tests launch."""
import shutil

import pytest

from dcd.layers import gpu_kernels


def test_kernel_module_compiles(tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not on PATH (the CUDA toolkit is needed to compile the kernels)")
    cubin = gpu_kernels.nvcc_compile(tmp_path / "dcd_kernels.cubin", nvcc=nvcc)
    assert cubin.stat().st_size > 0
    source = gpu_kernels.kernel_source()
    for name, _, _ in gpu_kernels._KERNELS:
        assert f"void {name}(int n," in source
