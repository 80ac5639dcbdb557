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
