import os
import signal
import subprocess
import sys
import textwrap

import lmdb
import pytest
from caffe.proto import caffe_pb2
from datahelpers import load_tool, write_jpeg_frames

from dcd.data import lmdb_store
from dcd.data.filelists import VideoEntry
from dcd.data.lmdb_store import BadFrameError, build_lmdb, list_videos, read_video_frames


@pytest.fixture
def frames_root(tmp_path):
    """Three small videos of random JPEG frames: a (5 frames), b (3), c (4)."""
    root = tmp_path / "frames"
    for seed, (video_id, count) in enumerate({"a": 5, "b": 3, "c": 4}.items()):
        write_jpeg_frames(root / video_id, count, seed=seed)
    return root


ENTRIES = [VideoEntry("a", 5, 0), VideoEntry("b", 3, 7), VideoEntry("c", 4, 2)]


def all_keys(path):
    env = lmdb.open(str(path), readonly=True)
    with env.begin() as txn:
        keys = [key.decode() for key, _ in txn.cursor()]
    env.close()
    return keys


def test_key_scheme_and_datums(frames_root, tmp_path):
    db = tmp_path / "db"
    report = build_lmdb(frames_root, ENTRIES, db, progress=False)
    assert report.written == ["a", "b", "c"] and report.frames_written == 12
    assert set(all_keys(db)) == ({f"a/img_{i:05d}.jpg" for i in range(1, 6)}
                                 | {f"b/img_{i:05d}.jpg" for i in range(1, 4)}
                                 | {f"c/img_{i:05d}.jpg" for i in range(1, 5)}
                                 | {"__video__/a", "__video__/b", "__video__/c"})
    env = lmdb.open(str(db), readonly=True)
    with env.begin() as txn:
        assert txn.get(b"__video__/a") == b"5"
        datum = caffe_pb2.Datum()
        datum.ParseFromString(txn.get(b"b/img_00002.jpg"))
    env.close()
    assert (datum.channels, datum.height, datum.width, datum.encoded, datum.label) == (3, 24, 32, True, 7)
    assert datum.data == (frames_root / "b" / "img_00002.jpg").read_bytes()  # bytes unchanged
    assert list_videos(db) == {"a": 5, "b": 3, "c": 4}
    images, label = read_video_frames(db, "c")
    assert label == 2 and len(images) == 4 and images[0].shape == (24, 32, 3)
    with pytest.raises(KeyError):
        read_video_frames(db, "zzz")


def test_rerun_skips_complete_videos_and_rewrites_changed_ones(frames_root, tmp_path):
    db = tmp_path / "db"
    build_lmdb(frames_root, ENTRIES, db, progress=False)
    report = build_lmdb(frames_root, ENTRIES, db, progress=False)
    assert report.written == [] and report.skipped == ["a", "b", "c"]
    # Re-extracted shorter with a new label: rewritten, and no stale tail frames remain.
    for i in (4, 5):
        os.remove(frames_root / "a" / f"img_{i:05d}.jpg")
    report = build_lmdb(frames_root, [VideoEntry("a", 3, 1)] + ENTRIES[1:], db, progress=False)
    assert report.written == ["a"]
    assert [k for k in all_keys(db) if k.startswith("a/")] == [f"a/img_{i:05d}.jpg" for i in (1, 2, 3)]
    assert read_video_frames(db, "a")[1] == 1


def stored_labels(db, video_id):
    return [d.label for d in lmdb_store.read_video_datums(db, video_id)]


@pytest.mark.parametrize("verify", [True, False])
def test_rerun_rewrites_a_video_whose_label_alone_changed(frames_root, tmp_path, verify):
    """Same frames, same count, new label in the list: every frame's Datum must get it.
    Without --verify nothing else would notice a resume check that ignores labels."""
    db = tmp_path / "db"
    build_lmdb(frames_root, ENTRIES, db, progress=False, verify=verify)
    relabelled = [VideoEntry("a", 5, 0), VideoEntry("b", 3, 8), VideoEntry("c", 4, 2)]
    report = build_lmdb(frames_root, relabelled, db, progress=False, verify=verify)
    assert report.written == ["b"] and report.skipped == ["a", "c"]
    assert stored_labels(db, "b") == [8, 8, 8]
    assert stored_labels(db, "a") == [0] * 5
    assert list_videos(db) == {"a": 5, "b": 3, "c": 4}


@pytest.mark.parametrize("verify", [True, False])
def test_rerun_rewrites_a_video_whose_count_alone_changed(frames_root, tmp_path, verify):
    """Same label, frames re-extracted longer (then shorter): rewritten each time,
    with exactly the listed frames."""
    db = tmp_path / "db"
    build_lmdb(frames_root, ENTRIES, db, progress=False, verify=verify)
    write_jpeg_frames(frames_root / "c", 6, seed=5)  # c re-extracted: 6 new frames
    longer = ENTRIES[:2] + [VideoEntry("c", 6, 2)]
    report = build_lmdb(frames_root, longer, db, progress=False, verify=verify)
    assert report.written == ["c"] and report.skipped == ["a", "b"]
    assert list_videos(db)["c"] == 6
    datums = lmdb_store.read_video_datums(db, "c")
    assert [d.data for d in datums] == [(frames_root / "c" / f"img_{i:05d}.jpg").read_bytes()
                                        for i in range(1, 7)]
    assert [d.label for d in datums] == [2] * 6
    shorter = ENTRIES[:2] + [VideoEntry("c", 2, 2)]
    report = build_lmdb(frames_root, shorter, db, progress=False, verify=verify)
    assert report.written == ["c"]
    assert [k for k in all_keys(db) if k.startswith("c/")] == ["c/img_00001.jpg", "c/img_00002.jpg"]
    assert list_videos(db)["c"] == 2


def test_flow_rerun_rewrites_on_a_label_or_count_change(frames_root, tmp_path):
    flow_root = tmp_path / "flow"
    for i, (vid, n, _) in enumerate(ENTRIES):
        write_flow_pairs(flow_root / vid, n - 1, seed=i)
    flow_entries = [VideoEntry(vid, n - 1, label) for vid, n, label in ENTRIES]
    db = tmp_path / "db"
    build_lmdb(flow_root, flow_entries, db, modality="flow", progress=False, verify=False)
    relabelled = [VideoEntry("a", 4, 3)] + flow_entries[1:]
    report = build_lmdb(flow_root, relabelled, db, modality="flow", progress=False, verify=False)
    assert report.written == ["a"]
    assert {d.label for d in lmdb_store.read_video_datums(db, "a", "flow")} == {3}
    shorter = relabelled[:1] + [VideoEntry("b", 1, 7)] + flow_entries[2:]
    report = build_lmdb(flow_root, shorter, db, modality="flow", progress=False, verify=False)
    assert report.written == ["b"] and list_videos(db, "flow")["b"] == 1
    assert [k for k in all_keys(db) if k.startswith("b/")] == ["b/flow_x_00001.jpg",
                                                               "b/flow_y_00001.jpg"]


def test_map_grows_when_full(frames_root, tmp_path):
    write_jpeg_frames(frames_root / "big", 40, size=(128, 128), seed=9)  # ~40 x 20 KB
    db = tmp_path / "db"
    report = build_lmdb(frames_root, ENTRIES + [VideoEntry("big", 40, 1)], db,
                        map_size=64 << 10, progress=False)
    assert report.map_size > 64 << 10
    assert list_videos(db) == {"a": 5, "b": 3, "c": 4, "big": 40}
    assert len(read_video_frames(db, "big")[0]) == 40


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


@pytest.mark.parametrize("damage, reason", [
    (truncate, "truncated JPEG"),
    (lambda path: path.write_bytes(b"\xff\xd8" + b"\x00" * 64 + b"\xff\xd9"), "corrupt JPEG"),
    (lambda path: path.write_bytes(b"GIF89a not a jpeg"), "not a JPEG"),
    (os.remove, "missing"),  # a gap in the numbering
])
def test_bad_frame_stops_the_build_naming_video_and_frame(frames_root, tmp_path, damage, reason):
    bad_frame = frames_root / "b" / "img_00002.jpg"
    damage(bad_frame)
    db = tmp_path / "db"
    with pytest.raises(BadFrameError) as err:
        build_lmdb(frames_root, ENTRIES, db, progress=False)
    assert err.value.video_id == "b" and err.value.path == str(bad_frame)
    assert "video b" in str(err.value) and str(bad_frame) in str(err.value) and reason in str(err.value)
    assert list_videos(db) == {"a": 5}  # what was written before stays


def test_skip_bad_skips_and_counts(frames_root, tmp_path):
    truncate(frames_root / "b" / "img_00002.jpg")
    logged = []
    report = build_lmdb(frames_root, ENTRIES, tmp_path / "db", skip_bad=True, progress=False,
                        log=logged.append)
    assert report.written == ["a", "c"] and [vid for vid, _ in report.bad] == ["b"]
    assert "img_00002.jpg" in logged[0]
    assert list_videos(tmp_path / "db") == {"a": 5, "c": 4}


def test_list_claiming_more_frames_than_exist(frames_root, tmp_path):
    with pytest.raises(BadFrameError, match=r"video c: frame .*c/img_00005.jpg: missing \(the list claims 6"):
        build_lmdb(frames_root, [VideoEntry("c", 6, 2)], tmp_path / "db", progress=False)


def test_undecodable_frame_with_valid_structure(frames_root, tmp_path):
    """Start, frame header, scan and end markers all present, but no Huffman or
    quantisation tables: only decoding finds it."""
    path = frames_root / "a" / "img_00003.jpg"
    data = path.read_bytes()
    sof, sos = data.index(b"\xff\xc0"), data.index(b"\xff\xda")
    sof_end = sof + 2 + int.from_bytes(data[sof + 2:sof + 4], "big")
    path.write_bytes(data[:2] + data[sof:sof_end] + data[sos:])
    # libjpeg's own check (dcd.data.jpeg) names the missing table.
    with pytest.raises(BadFrameError, match="img_00003.jpg: corrupt JPEG: .*table .* was not defined"):
        build_lmdb(frames_root, ENTRIES, tmp_path / "db", progress=False)
    # The structural check alone lets it through; the read-back decodes the middle frame.
    with pytest.raises(RuntimeError, match="verify a: frame 3 does not decode"):
        build_lmdb(frames_root, ENTRIES, tmp_path / "db2", decode_check="none", progress=False)


def test_conflicting_duplicate_entries(frames_root, tmp_path):
    with pytest.raises(ValueError, match="listed twice"):
        build_lmdb(frames_root, ENTRIES + [VideoEntry("a", 5, 3)], tmp_path / "db", progress=False)
    report = build_lmdb(frames_root, ENTRIES + ENTRIES, tmp_path / "db", progress=False)
    assert report.written == ["a", "b", "c"]


def test_exception_inside_a_video_transaction_leaves_nothing_of_it(frames_root, tmp_path, monkeypatch):
    db = tmp_path / "db"
    calls = []
    real_put = lmdb_store._put_record

    def put_then_fail(txn, key, value):
        calls.append(key)
        if len(calls) == 5 + 1 + 2:  # video a (5 frames + marker), then 2 frames of b
            raise KeyboardInterrupt
        real_put(txn, key, value)

    monkeypatch.setattr(lmdb_store, "_put_record", put_then_fail)
    with pytest.raises(KeyboardInterrupt):
        build_lmdb(frames_root, ENTRIES, db, progress=False)
    assert list_videos(db) == {"a": 5}
    assert not [k for k in all_keys(db) if k.startswith("b/")]
    monkeypatch.setattr(lmdb_store, "_put_record", real_put)
    report = build_lmdb(frames_root, ENTRIES, db, progress=False)
    assert report.skipped == ["a"] and report.written == ["b", "c"]
    assert list_videos(db) == {"a": 5, "b": 3, "c": 4}


def test_build_killed_mid_video_loses_nothing_and_resumes(frames_root, tmp_path):
    """A real SIGKILL halfway through video b's transaction."""
    db = tmp_path / "db"
    script = textwrap.dedent(f"""
        import os, signal, sys
        from dcd.data import lmdb_store
        from dcd.data.filelists import VideoEntry
        real_put, puts = lmdb_store._put_record, []
        def put(txn, key, value):
            puts.append(key)
            if len(puts) == 8:
                os.kill(os.getpid(), signal.SIGKILL)
            real_put(txn, key, value)
        lmdb_store._put_record = put
        entries = [VideoEntry(*e) for e in {[tuple(e) for e in ENTRIES]!r}]
        lmdb_store.build_lmdb({str(frames_root)!r}, entries, {str(db)!r}, progress=False)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert list_videos(db) == {"a": 5}
    assert [k for k in all_keys(db) if not k.startswith(("a/", "__video__/a"))] == []
    report = build_lmdb(frames_root, ENTRIES, db, progress=False)
    assert report.skipped == ["a"] and report.written == ["b", "c"]


def test_cli_errors(frames_root, tmp_path, capsys):
    tool = load_tool("build_lmdb")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert tool.main(["--frames", str(frames_root), "--list", str(empty), "--out", str(tmp_path / "db")]) == 2
    assert "empty" in capsys.readouterr().err
    malformed = tmp_path / "malformed.txt"
    malformed.write_text("a 5 0\nb 3 seven\n")
    assert tool.main(["--frames", str(frames_root), "--list", str(malformed),
                      "--out", str(tmp_path / "db")]) == 2
    assert "malformed.txt:2:" in capsys.readouterr().err
    truncate(frames_root / "c" / "img_00004.jpg")
    listed = tmp_path / "list.txt"
    listed.write_text("a 5 0\nb 3 7\nc 4 2\n")
    args = ["--frames", str(frames_root), "--list", str(listed), "--out", str(tmp_path / "db"), "--no-progress"]
    assert tool.main(args) == 2
    assert "video c: frame" in capsys.readouterr().err
    assert tool.main(args + ["--skip-bad"]) == 0
    assert "0 videos written (0 frames), 2 already complete, 1 bad videos skipped" in capsys.readouterr().out


def write_flow_pairs(folder, count, seed=0, size=(24, 32)):
    """`count` grey JPEG flow pairs flow_x/flow_y_<i>.jpg; returns {name: bytes}."""
    import cv2
    import numpy as np
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for i in range(1, count + 1):
        for c in "xy":
            ok, data = cv2.imencode(".jpg", rng.integers(0, 256, size, dtype=np.uint8))
            assert ok
            (folder / f"flow_{c}_{i:05d}.jpg").write_bytes(data.tobytes())
            written[f"flow_{c}_{i:05d}.jpg"] = data.tobytes()
    return written


def test_flow_shares_the_lmdb_with_frames(frames_root, tmp_path, capsys):
    """Flow keys and the __flow__/ marker beside a video's frames; each modality is
    resumable on its own; flow Datums are 1-channel encoded JPEGs."""
    flow_root = tmp_path / "flow"
    written = {vid: write_flow_pairs(flow_root / vid, n - 1, seed=i + 10)
               for i, (vid, n, _) in enumerate(ENTRIES)}
    flow_entries = [VideoEntry(vid, n - 1, label) for vid, n, label in ENTRIES]
    db = tmp_path / "db"
    build_lmdb(frames_root, ENTRIES, db, progress=False)
    report = build_lmdb(flow_root, flow_entries, db, modality="flow", progress=False)
    assert report.written == ["a", "b", "c"] and report.frames_written == 2 * (4 + 2 + 3)
    keys = set(all_keys(db))
    assert {f"a/flow_{c}_{i:05d}.jpg" for c in "xy" for i in range(1, 5)} < keys
    assert "a/flow_x_00005.jpg" not in keys and "__flow__/a" in keys and "a/img_00005.jpg" in keys
    assert list_videos(db) == {"a": 5, "b": 3, "c": 4}
    assert list_videos(db, "flow") == {"a": 4, "b": 2, "c": 3}
    datums = lmdb_store.read_video_datums(db, "b", "flow")
    assert [d.data for d in datums] == [written["b"][n] for n in (
        "flow_x_00001.jpg", "flow_y_00001.jpg", "flow_x_00002.jpg", "flow_y_00002.jpg")]
    assert (datums[0].channels, datums[0].height, datums[0].width, datums[0].label) == (1, 24, 32, 7)
    pairs, label = read_video_frames(db, "c", "flow")
    assert label == 2 and len(pairs) == 3 and pairs[0][1].shape == (24, 32)
    # Reruns skip per modality; a rebuilt RGB video leaves its flow alone.
    assert build_lmdb(flow_root, flow_entries, db, modality="flow", progress=False).skipped == ["a", "b", "c"]
    report = build_lmdb(frames_root, [VideoEntry("a", 5, 4)], db, progress=False)
    assert report.written == ["a"] and list_videos(db, "flow")["a"] == 4
    # A missing y image names the file; the video's flow stays absent, its frames present.
    os.remove(flow_root / "b" / "flow_y_00002.jpg")
    db2 = tmp_path / "db2"
    build_lmdb(frames_root, ENTRIES, db2, progress=False)
    with pytest.raises(BadFrameError, match=r"video b: frame .*b/flow_y_00002.jpg: missing"):
        build_lmdb(flow_root, flow_entries, db2, modality="flow", progress=False)
    assert list_videos(db2, "flow") == {"a": 4} and list_videos(db2)["b"] == 3
    # The CLI.
    listed = tmp_path / "flow_list.txt"
    listed.write_text("a 4 0\nc 3 2\n")
    assert load_tool("build_lmdb").main(["--modality", "flow", "--frames", str(flow_root),
                                         "--list", str(listed), "--out", str(db2),
                                         "--no-progress"]) == 0
    assert "1 videos written (6 frames), 1 already complete" in capsys.readouterr().out
    assert list_videos(db2, "flow") == {"a": 4, "c": 3}


def test_flow_transaction_interrupted_leaves_nothing_of_the_video(frames_root, tmp_path,
                                                                  monkeypatch):
    flow_root = tmp_path / "flow"
    for vid, n, _ in ENTRIES:
        write_flow_pairs(flow_root / vid, n - 1)
    flow_entries = [VideoEntry(vid, n - 1, label) for vid, n, label in ENTRIES]
    calls, real_put = [], lmdb_store._put_record

    def put_then_fail(txn, key, value):
        calls.append(key)
        if len(calls) == 8 + 1 + 3:  # video a (4 pairs + marker), then x, y, x of b
            raise KeyboardInterrupt
        real_put(txn, key, value)

    monkeypatch.setattr(lmdb_store, "_put_record", put_then_fail)
    db = tmp_path / "db"
    with pytest.raises(KeyboardInterrupt):
        build_lmdb(flow_root, flow_entries, db, modality="flow", progress=False)
    assert list_videos(db, "flow") == {"a": 4}
    assert not [k for k in all_keys(db) if k.startswith("b/")]
    monkeypatch.setattr(lmdb_store, "_put_record", real_put)
    report = build_lmdb(flow_root, flow_entries, db, modality="flow", progress=False)
    assert report.skipped == ["a"] and report.written == ["b", "c"]


@pytest.mark.parametrize("kind", ["truncated", "scrambled"])
@pytest.mark.parametrize("decode_check", ["all", "sample"])
def test_what_libjpeg_calls_corrupt_is_refused(frames_root, tmp_path, kind, decode_check):
    """Scrambled entropy data passes the structural check and OpenCV's decode;
    libjpeg's warning stops it, in both decode-check modes."""
    from datahelpers import CORRUPTIONS, smooth_jpeg
    for i in range(1, 4):  # b: three frames of one geometry, the middle one damaged
        data = smooth_jpeg(seed=i)
        (frames_root / "b" / f"img_{i:05d}.jpg").write_bytes(
            CORRUPTIONS[kind](data) if i == 2 and kind == "scrambled" else data)
    bad = frames_root / "b" / "img_00002.jpg"
    if kind == "truncated":
        bad.write_bytes(CORRUPTIONS[kind](bad.read_bytes()) + b"\xff\xd9")  # end marker kept
    assert isinstance(lmdb_store.jpeg_geometry(bad.read_bytes()), tuple)  # structure is fine
    with pytest.raises(BadFrameError) as err:
        build_lmdb(frames_root, ENTRIES, tmp_path / "db", decode_check=decode_check,
                   progress=False)
    assert err.value.video_id == "b" and err.value.path == str(bad)
    assert "corrupt JPEG" in str(err.value)
    assert list_videos(tmp_path / "db") == {"a": 5}


def test_out_on_a_folder_that_is_not_an_lmdb(frames_root, tmp_path, capsys):
    listed = tmp_path / "list.txt"
    listed.write_text("a 5 0\n")
    out = tmp_path / "my_results"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    rc = load_tool("build_lmdb").main(["--frames", str(frames_root), "--list", str(listed),
                                       "--out", str(out), "--no-progress"])
    (line,) = capsys.readouterr().err.splitlines()
    assert rc == 2 and str(out) in line and "not an LMDB" in line and "notes.txt" in line
    assert sorted(os.listdir(out)) == ["notes.txt"]  # nothing written into it
    (out / "data.mdb").write_bytes(b"garbage" * 1000)  # a damaged LMDB
    rc = load_tool("build_lmdb").main(["--frames", str(frames_root), "--list", str(listed),
                                       "--out", str(out), "--no-progress"])
    (line,) = capsys.readouterr().err.splitlines()
    assert rc == 2 and str(out) in line and "cannot open as an LMDB" in line
