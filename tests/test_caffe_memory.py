"""Blob host memory (caffe_layers/patches/0009-*, 0010-*): every blob starts
on a 64-byte line, and one of 2 MiB or more on a 2 MiB boundary with its
whole 2 MiB pages marked for transparent huge pages (MADV_HUGEPAGE, which
/proc/self/smaps shows as the `hg` flag of the mapping) where the kernel
has THP."""
from pathlib import Path

import pytest

caffe = pytest.importorskip("caffe")

from dcd.caffeio.netio import load_net  # noqa: E402

HUGE_PAGE = 2 << 20
THP = Path("/sys/kernel/mm/transparent_hugepage")


def blob_address(floats):
    """Address of the CPU data of a fresh Input blob of `floats` floats."""
    from caffe import layers as L
    n = caffe.NetSpec()
    n.x = L.Input(shape=dict(dim=[1, floats]))
    net = load_net(n.to_proto(), caffe.TEST)
    data = net.blobs["x"].data
    return net, data.ctypes.data


def mapping_flags(address):
    """The VmFlags of the mapping of this process that holds `address`."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and ":" not in head:
            lo, hi = (int(x, 16) for x in head.split("-"))
            inside = lo <= address < hi
        elif inside and head == "VmFlags:":
            return line.split()[1:]
    raise AssertionError(f"no mapping holds {address:#x}")


@pytest.mark.parametrize("floats", [1, 1000, HUGE_PAGE // 4 - 16])
def test_small_blobs_start_on_a_cache_line(floats):
    _, address = blob_address(floats)
    assert address % 64 == 0


# 2 MiB exactly, the chain's features (64 x 112 x 112) and cost volume (225 x
# 112 x 112): sizes that are not whole huge pages.
@pytest.mark.parametrize("floats", [HUGE_PAGE // 4, 64 * 112 * 112, 225 * 112 * 112])
def test_large_blobs_start_on_a_huge_page(floats):
    net, address = blob_address(floats)
    assert address % HUGE_PAGE == 0
    if THP.is_dir():
        assert "hg" in mapping_flags(address), "blob memory not marked MADV_HUGEPAGE"
