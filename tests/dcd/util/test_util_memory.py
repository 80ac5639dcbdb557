"""dcd.util.memory: the allocator thresholds eval_net's reader and the layer
benchmark set, and the page-fault count."""
import platform
import subprocess
import sys

import dcd.scoring.readers as readers
from dcd.util import memory


class FakeLibc:
    def __init__(self, result=1):
        self.calls, self.result = [], result

    def mallopt(self, param, value):
        self.calls.append((param, value))
        return self.result


def test_keep_freed_memory_raises_the_mmap_and_trim_thresholds():
    libc = FakeLibc()
    assert memory.keep_freed_memory(libc) is True
    assert libc.calls == [(memory.M_MMAP_THRESHOLD, 32 << 20),
                          (memory.M_TRIM_THRESHOLD, 1 << 30)]


def test_keep_freed_memory_reports_a_refused_or_missing_mallopt():
    assert memory.keep_freed_memory(FakeLibc(result=0)) is False
    assert memory.keep_freed_memory(object()) is False  # not glibc: no mallopt


def test_keep_freed_memory_on_this_c_library():
    # glibc has mallopt and accepts both values; other C libraries are left alone.
    assert memory.keep_freed_memory() is (platform.libc_ver()[0] == "glibc")


def test_open_reader_sets_the_allocator(tmp_path, monkeypatch):
    called = []
    monkeypatch.setattr(readers, "keep_freed_memory", lambda: called.append(True))
    readers.open_reader(tmp_path, "folder").close()
    assert called == [True]


KEEP_SCRIPT = """
import sys
import numpy as np
from dcd.util.memory import keep_freed_memory, minor_faults
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
faults = []
for _ in range(8):
    before = minor_faults()
    # Three 2 MiB blocks (below numpy's 4 MiB huge-page advice), written
    # and freed: glibc's default maps them afresh or trims the heap's free
    # top, so the next pass faults the pages in again.
    blocks = [np.ones(1 << 19, np.float32) for _ in range(3)]
    del blocks
    faults.append(minor_faults() - before)
print(kept, sum(faults[2:]))
"""


def test_keep_freed_memory_stops_the_page_faults():
    """Blocks freed and allocated again come back without page faults once
    memory is kept, where glibc's default faults them in anew."""
    if platform.libc_ver()[0] != "glibc":
        assert memory.keep_freed_memory() is False
        return

    def faults(mode):
        out = subprocess.run([sys.executable, "-c", KEEP_SCRIPT, mode], capture_output=True,
                             text=True, check=True).stdout.split()
        return out[0], int(out[1])
    applied, kept = faults("keep")
    assert applied == "True"
    default = faults("default")[1]
    # At least a fault a pass by default (fewer than 1,536 where the kernel
    # backs the blocks with huge pages), twenty times fewer once kept.
    assert default >= 6, default
    assert 20 * kept < default, (kept, default)


def test_minor_faults_counts_this_process_faulting_pages_in():
    import mmap
    pages = mmap.mmap(-1, 64 * mmap.PAGESIZE)  # fresh pages, whatever malloc keeps
    before = memory.minor_faults()
    for i in range(0, len(pages), mmap.PAGESIZE):
        pages[i] = 1
    assert memory.minor_faults() >= before + 1
    pages.close()
