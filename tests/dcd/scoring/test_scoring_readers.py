"""Frame readers: the thread pool gives the loop's frames, in order, and
its first failure."""
import cv2
import numpy as np
import pytest

from dcd.data.frames import FRAME_PATTERN
from dcd.scoring.readers import FrameReadError, open_reader


@pytest.fixture()
def frame_tree(tmp_path):
    rng = np.random.default_rng(0)
    video = tmp_path / "v_one"
    video.mkdir()
    for i in range(1, 13):
        cv2.imwrite(str(video / FRAME_PATTERN.format(i)),
                    rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    return tmp_path


@pytest.mark.parametrize("threads", [2, 3, 5])
def test_threads_give_the_frames_of_the_loop_in_order(frame_tree, threads):
    indices = [12, 1, 5, 2, 9, 3, 7]
    one = open_reader(frame_tree, "folder")
    many = open_reader(frame_tree, "folder", threads=threads)
    try:
        expected, got = one("v_one", indices), many("v_one", indices)
        assert len(got) == len(indices)
        for e, g in zip(expected, got):
            np.testing.assert_array_equal(e, g)
        # Distinct frames: a mix-up of positions would be seen.
        assert not np.array_equal(got[0], got[1])
    finally:
        one.close()
        many.close()


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_threads_raise_the_first_failure_in_index_order(frame_tree, threads):
    for i in (4, 9):
        (frame_tree / "v_one" / FRAME_PATTERN.format(i)).unlink()
    reader = open_reader(frame_tree, "folder", threads=threads)
    try:
        with pytest.raises(FrameReadError, match=FRAME_PATTERN.format(4).replace(".", r"\.")):
            reader("v_one", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
        # Frames are read again after a failure (the helpers are free).
        assert len(reader("v_one", [1, 2, 3, 5])) == 4
    finally:
        reader.close()


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_prefetched_calls_give_the_frames_of_the_loop(frame_tree, threads):
    calls = [[3, 1, 2], [12, 11], [5, 6, 7, 8], [9]]
    one = open_reader(frame_tree, "folder")
    many = open_reader(frame_tree, "folder", threads=threads)
    try:
        # As scoring asks: the first two ahead, then one more before each call.
        many.prefetch("v_one", calls[0])
        for k, indices in enumerate(calls):
            if k + 1 < len(calls):
                many.prefetch("v_one", calls[k + 1])
            got, expected = many("v_one", indices), one("v_one", indices)
            assert len(got) == len(indices)
            for e, g in zip(expected, got):
                np.testing.assert_array_equal(e, g)
        # Nothing is left queued once every prefetched call was made.
        assert not many._queued
        # A call nobody prefetched, and the same call again, still read.
        assert len(many("v_one", [4, 10])) == 2
        assert len(many("v_one", [4, 10])) == 2
    finally:
        one.close()
        many.close()


@pytest.mark.parametrize("threads", [2, 4])
def test_a_prefetched_call_raises_its_failure_when_made(frame_tree, threads):
    (frame_tree / "v_one" / FRAME_PATTERN.format(6)).unlink()
    reader = open_reader(frame_tree, "folder", threads=threads)
    try:
        reader.prefetch("v_one", [5, 6, 7])
        reader.prefetch("v_one", [1, 2])
        # The failure waits for its call; the other call is unaffected.
        assert len(reader("v_one", [1, 2])) == 2
        with pytest.raises(FrameReadError, match=FRAME_PATTERN.format(6).replace(".", r"\.")):
            reader("v_one", [5, 6, 7])
    finally:
        reader.close()


def test_unclaimed_prefetches_are_bounded(frame_tree):
    reader = open_reader(frame_tree, "folder", threads=2)
    try:
        for i in range(1, 8):
            reader.prefetch("v_one", [i, i + 1])
        assert len(reader._queued) == reader.MAX_QUEUED
        # The newest are kept, and claimed by their calls.
        assert len(reader("v_one", [7, 8])) == 2
        assert len(reader._queued) == reader.MAX_QUEUED - 1
    finally:
        reader.close()
