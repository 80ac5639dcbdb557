"""The process's allocator, set for code that allocates and frees many
frame-sized arrays (a decoded 340x256 frame is 261 KB).

glibc serves blocks above its mmap threshold (128 KB at start) with fresh
pages and returns a freed heap top above 128 KB to the system, so every
decoded frame can cost its page faults again: eval_net's reader, which keeps
a video's frames alive until the video is scored, spent about a third of its
time there (docs/DATA.md has the figures). keep_freed_memory() raises both
thresholds, so freed frames are reused from the heap instead.
tools/benchmark_layers.py sets the same for its numpy and PyTorch baselines,
whose temporaries were page-faulted in again on most passes
(docs/LAYERS.md).
"""
import ctypes
import ctypes.util

try:
    import resource
except ImportError:  # not a Unix: no page-fault count
    resource = None

# mallopt parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# glibc's largest mmap threshold on 64-bit, and a trim threshold above the
# free heap top a pass leaves: a scoring process's, and the benchmark's
# PyTorch reference of the DCD chain, whose passes free more than 256 MiB
# at once (with 256 MiB they still faulted 97,000-165,000 pages a pass;
# with 1 GiB, 0-1,600).
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 1 << 30

_applied = False


def keep_freed_memory(libc=None):
    """Raise glibc's mmap and trim thresholds for this process (once).
    True when they are set (or were already); False where the C library has
    no mallopt (not glibc), which leaves the allocator as it is. `libc`: the
    C library to use (tests)."""
    global _applied
    if _applied and libc is None:
        return True
    if libc is None:
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name)
        except OSError:
            return False
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    _applied = _applied or ok
    return ok


def minor_faults():
    """This process's minor page faults so far (all its threads), or None
    where the platform does not count them."""
    if resource is None:
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
