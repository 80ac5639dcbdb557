"""TSN's test protocol (frame choice, crops, layouts) against hand computation."""
import numpy as np
import pytest

from dcd.scoring import protocol
from scoring_helpers import video_samples


def test_snippet_starts_follow_tsn_ticks():
    # TSN eval_net.py: step = (n - L) // (S - 1), ticks 1, 1 + step, ...
    assert protocol.snippet_starts(100, 25, 1) == list(range(1, 98, 4))
    assert protocol.snippet_starts(100, 25, 5) == list(range(1, 74, 3))  # (100 - 5) // 24 = 3
    assert protocol.snippet_starts(20, 25, 1) == [1] * 25       # too short: repeat
    idx = protocol.snippet_frames(30, 3, 4)
    assert idx.tolist() == [[1, 2, 3, 4], [14, 15, 16, 17], [27, 28, 29, 30]]
    assert protocol.snippet_frames(2, 2, 3).tolist() == [[1, 2, 2], [1, 2, 2]]


def test_ten_crops_are_corners_centre_and_mirrors():
    rng = np.random.RandomState(0)
    frame = rng.randint(0, 256, (256, 340, 3)).astype(np.uint8)
    crops = protocol.crop_snippet([frame], 224, 224)
    assert crops.shape == (10, 1, 3, 224, 224)
    chw = frame.astype(np.float32).transpose(2, 0, 1) - np.array([104, 117, 123],
                                                                   np.float32)[:, None, None]
    expect = [chw[:, :224, :224], chw[:, :224, 116:], chw[:, 32:, :224], chw[:, 32:, 116:],
              chw[:, 16:240, 58:282]]
    for k, e in enumerate(expect):
        np.testing.assert_array_equal(crops[k, 0], e)
        np.testing.assert_array_equal(crops[k + 5, 0], e[:, :, ::-1])
    centre = protocol.crop_snippet([frame], 224, 224, ten_crop=False)
    np.testing.assert_array_equal(centre[0, 0], expect[4])


def test_layouts():
    assert protocol.input_layout((20, 3, 224, 224), 2) == "snippet"
    assert protocol.samples_per_forward((20, 3, 224, 224), 2) == 10
    assert protocol.input_layout((10, 6, 224, 224), 2) == "stacked"
    assert protocol.samples_per_forward((10, 6, 224, 224), 2) == 10
    with pytest.raises(ValueError):
        protocol.input_layout((7, 3, 8, 8), 2)
    with pytest.raises(ValueError):
        protocol.input_layout((4, 9, 8, 8), 2)
    s = np.arange(2 * 2 * 3 * 1 * 1).reshape(2, 2, 3, 1, 1)
    # snippet: frames of a sample on consecutive rows; stacked: along channels
    assert protocol.to_net_rows(s, "snippet")[:, :, 0, 0].tolist() == \
        [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]
    assert protocol.to_net_rows(s, "stacked")[:, :, 0, 0].tolist() == \
        [list(range(6)), list(range(6, 12))]


def test_video_samples_resize_and_order():
    frames = {i: np.full((128, 170, 3), i, np.uint8) for i in range(1, 11)}
    samples = video_samples(lambda idx: [frames[i] for i in idx], 10, 224, 224,
                                     num_snippets=3, new_length=2)
    assert samples.shape == (3 * 10, 2, 3, 224, 224)
    # snippet-major, crop-minor; frame value minus the channel's mean
    starts = protocol.snippet_starts(10, 3, 2)
    for s, start in enumerate(starts):
        for f in range(2):
            assert samples[s * 10 + 7, f, 0, 0, 0] == start + f - 104
