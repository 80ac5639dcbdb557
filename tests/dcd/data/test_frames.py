import os
import shutil

import cv2
import pytest
from datahelpers import BIKES_MAX_FRAMES, SMALL, decode_video, load_tool, mean_abs_diff

from dcd.data import frames


def frame_names(folder):
    return sorted(os.listdir(folder))


@pytest.fixture(scope="module")
def extracted(ucf_videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("frames")
    summary = frames.extract_all(frames.find_videos(ucf_videos), out, progress=False, **SMALL)
    assert summary.ok and len(summary.extracted) == 2
    return out


def test_find_videos_recursive_and_ids(ucf_videos):
    videos = frames.find_videos(ucf_videos)
    assert [frames.video_id_of(v) for v in videos] == ["v_Biking_g01_c01", "v_HandStandPushups_g01_c01"]


def test_duplicate_stems_are_refused_listing_both(tmp_path):
    for folder in ("A", "B"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "clip.avi").write_bytes(b"")
    with pytest.raises(frames.DuplicateVideoIdError) as err:
        frames.extract_all(frames.find_videos(tmp_path), tmp_path / "out", progress=False)
    assert "clip" in str(err.value) and "A/clip.avi" in str(err.value) and "B/clip.avi" in str(err.value)


def test_target_size():
    assert frames.target_size(640, 272) == (340, 256)
    assert frames.target_size(640, 272, short_side=136) == (320, 136)
    assert frames.target_size(144, 176, short_side=72) == (72, 88)


def test_frames_match_opencv_decode(ucf_videos, extracted):
    """Count, numbering from 1, and pixels (up to JPEG loss) equal OpenCV's decode + resize."""
    for video in frames.find_videos(ucf_videos):
        decoded = decode_video(video)
        folder = extracted / frames.video_id_of(video)
        names = frame_names(folder)
        assert names == [f"img_{i:05d}.jpg" for i in range(1, len(decoded) + 1)]
        for i in (0, len(decoded) // 2, len(decoded) - 1):
            stored = cv2.imread(str(folder / names[i]))
            assert stored.shape == (SMALL["height"], SMALL["width"], 3)
            expected = cv2.resize(decoded[i], (SMALL["width"], SMALL["height"]))
            assert mean_abs_diff(stored, expected) < 3


def test_max_frames_and_short_side(ucf_videos, tmp_path):
    video = ucf_videos / "Biking" / "v_Biking_g01_c01.mp4"
    result = frames.extract_video(video, tmp_path, short_side=68, max_frames=BIKES_MAX_FRAMES)
    assert not result.error and result.num_frames == BIKES_MAX_FRAMES
    folder = tmp_path / "v_Biking_g01_c01"
    assert len(frame_names(folder)) == BIKES_MAX_FRAMES
    assert cv2.imread(str(folder / "img_00001.jpg")).shape == (68, 160, 3)  # 640x272 -> 160x68


def test_unreadable_videos_are_reported_without_stopping_the_batch(ucf_videos, tmp_path, capsys):
    videos = tmp_path / "videos"
    shutil.copytree(ucf_videos / "HandStandPushups", videos / "HandStandPushups")
    (videos / "Broken").mkdir()
    (videos / "Broken" / "v_garbage.avi").write_bytes(b"this is not a video" * 100)
    (videos / "Broken" / "v_empty.mp4").write_bytes(b"")
    out = tmp_path / "frames"
    rc = load_tool("extract_frames").main([str(videos), str(out), "--no-progress",
                                           "--width", "88", "--height", "72", "--max-frames", "5"])
    assert rc == 1
    assert sorted(os.listdir(out)) == ["extract_failures.txt", "v_HandStandPushups_g01_c01"]
    failures = (out / frames.FAILURES_FILE).read_text()
    assert "v_garbage.avi" in failures and "v_empty.mp4" in failures
    assert "v_garbage.avi" in capsys.readouterr().err
    # Fixed videos are retried and the failure list goes away.
    shutil.rmtree(videos / "Broken")
    assert load_tool("extract_frames").main([str(videos), str(out), "--no-progress"]) == 0
    assert not (out / frames.FAILURES_FILE).exists()


def test_rerun_skips_complete_videos_and_redoes_interrupted_ones(ucf_videos, tmp_path):
    out = tmp_path / "frames"
    options = dict(progress=False, max_frames=BIKES_MAX_FRAMES, **SMALL)
    videos = frames.find_videos(ucf_videos)
    frames.extract_all(videos, out, **options)
    complete, interrupted = out / "v_Biking_g01_c01", out / "v_HandStandPushups_g01_c01"
    mtimes = {name: os.stat(complete / name).st_mtime_ns for name in frame_names(complete)}
    expected = frame_names(interrupted)
    # An interrupted run leaves a .partial folder with some frames and no final folder.
    partial = out / ("v_HandStandPushups_g01_c01" + frames.PARTIAL_SUFFIX)
    os.rename(interrupted, partial)
    for name in expected[5:]:
        os.remove(partial / name)
    (partial / "img_00006.jpg").write_bytes(b"half a frame")
    # A stray frame beyond the count: a rerun that reused the .partial would keep it.
    stray = (partial / "img_00001.jpg").read_bytes()
    (partial / f"img_{len(expected) + 3:05d}.jpg").write_bytes(stray)

    summary = frames.extract_all(videos, out, **options)
    assert [r.video_id for r in summary.skipped] == ["v_Biking_g01_c01"]
    assert [r.video_id for r in summary.extracted] == ["v_HandStandPushups_g01_c01"]
    assert not partial.exists()
    assert frame_names(interrupted) == expected
    assert cv2.imread(str(interrupted / "img_00006.jpg")) is not None
    assert {name: os.stat(complete / name).st_mtime_ns for name in frame_names(complete)} == mtimes


def test_parallel_workers_give_the_same_frames(ucf_videos, extracted, tmp_path):
    summary = frames.extract_all(frames.find_videos(ucf_videos), tmp_path, workers=2,
                                 progress=False, **SMALL)
    assert summary.ok and len(summary.extracted) == 2
    for video_id in ("v_Biking_g01_c01", "v_HandStandPushups_g01_c01"):
        names = frame_names(tmp_path / video_id)
        assert names == frame_names(extracted / video_id)
        assert (tmp_path / video_id / names[-1]).read_bytes() == (extracted / video_id / names[-1]).read_bytes()


# ------------------------------------------------------------ bad input (issue: refuse, name it)

@pytest.mark.parametrize("flag", ["--width", "--height", "--short-side", "--max-frames"])
def test_zero_sizes_and_frame_limits_are_refused(ucf_videos, tmp_path, capsys, flag):
    with pytest.raises(SystemExit) as exit_info:
        load_tool("extract_frames").main([str(ucf_videos), str(tmp_path / "out"), flag, "0"])
    assert exit_info.value.code == 2
    assert f"{flag} must be >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_video_id_with_a_space_is_refused_at_extraction(ucf_videos, tmp_path, capsys):
    videos = tmp_path / "videos"
    shutil.copytree(ucf_videos, videos)
    bikes = videos / "Biking" / "v_Biking_g01_c01.mp4"
    bikes.rename(bikes.with_name("v_Biking g01_c01.mp4"))
    out = tmp_path / "frames"
    rc = load_tool("extract_frames").main([str(videos), str(out), "--max-frames", "3",
                                          "--width", "88", "--height", "72", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "FAILED" in err and "'v_Biking g01_c01' contains whitespace" in err
    assert sorted(os.listdir(out)) == ["extract_failures.txt", "v_HandStandPushups_g01_c01"]


def _cut_video(tmp_path, frames_written=40):
    """An MJPG AVI cut in half: its header still declares every frame."""
    import numpy as np
    folder = tmp_path / "videos"
    folder.mkdir()
    whole = folder / "whole.avi"
    writer = cv2.VideoWriter(str(whole), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(frames_written):
        writer.write(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    writer.release()
    data = whole.read_bytes()
    whole.unlink()
    (folder / "v_cut.avi").write_bytes(data[:len(data) // 2])
    return folder


def test_a_video_cut_short_is_refused_unless_allowed(tmp_path, capsys):
    videos = _cut_video(tmp_path)
    capture = cv2.VideoCapture(str(videos / "v_cut.avi"))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 40  # the premise: the header's count
    capture.release()
    out = tmp_path / "frames"
    args = [str(videos), str(out), "--width", "64", "--height", "48", "--no-progress"]
    assert load_tool("extract_frames").main(args) == 1
    err = capsys.readouterr().err
    assert "FAILED" in err and "v_cut.avi" in err
    assert "of the 40 frames the container declares" in err
    assert os.listdir(out) == ["extract_failures.txt"]  # nothing marked complete
    assert load_tool("extract_frames").main(args + ["--allow-short"]) == 0
    kept = len(os.listdir(out / "v_cut"))
    assert 0 < kept < 40 and not (out / "extract_failures.txt").exists()
    # --max-frames below the decoded count is no short decode.
    out2 = tmp_path / "frames2"
    assert load_tool("extract_frames").main([str(videos), str(out2), "--max-frames", "5",
                                            "--no-progress"]) == 0
    assert len(os.listdir(out2 / "v_cut")) == 5


def test_a_full_disk_gives_the_os_reason(tmp_path):
    import numpy as np
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    error = frames.write_jpeg("/dev/full", np.zeros((8, 8, 3), np.uint8),
                              [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert error.startswith("cannot write /dev/full: No space left on device (ENOSPC)")


def test_an_unwritable_output_folder_is_one_line(ucf_videos, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    rc = load_tool("extract_frames").main([str(ucf_videos), str(blocker / "frames"),
                                          "--max-frames", "2", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    (line,) = err.splitlines()
    assert line.startswith("extract_frames: error: ") and str(blocker / "frames") in line
    assert "Not a directory" in line
