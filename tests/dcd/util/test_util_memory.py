"""dcd.util.memory: the allocator thresholds eval_net's reader sets."""
import platform

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
                          (memory.M_TRIM_THRESHOLD, 256 << 20)]


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
