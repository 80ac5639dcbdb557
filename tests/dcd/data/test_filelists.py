import pytest
from datahelpers import load_tool

from dcd.data import filelists
from dcd.data.filelists import VideoEntry


def make_folders(root, counts, patterns, other):
    """Folders with `count` numbered (empty) files per pattern each, and one
    `other` file that must not be counted: only counts matter here."""
    for video_id, count in counts.items():
        folder = root / video_id
        folder.mkdir(parents=True)
        for i in range(1, count + 1):
            for pattern in patterns:
                (folder / pattern.format(i)).write_bytes(b"")
        (folder / other).write_bytes(b"")


def make_frames(root, counts):
    """Frame folders with `count` img_*.jpg files each (and a flow_x file)."""
    make_folders(root, counts, ("img_{:05d}.jpg",), "flow_x_00001.jpg")


@pytest.fixture
def ucf_splits(tmp_path):
    splits = tmp_path / "splits"
    splits.mkdir()
    # UCF101's files use CRLF and its class index spells HandstandPushups in lower case 's'.
    (splits / "classInd.txt").write_bytes(b"1 ApplyEyeMakeup\r\n2 HandstandPushups\r\n3 Biking\r\n")
    for k in (1, 2):
        (splits / f"trainlist{k:02d}.txt").write_bytes(
            b"ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\n"
            b"HandstandPushups/v_HandStandPushups_g08_c01.avi 2\r\n"
            b"Biking/v_Biking_g09_c01.avi 3\r\n")
        (splits / f"testlist{k:02d}.txt").write_bytes(
            b"ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\n"
            b"HandstandPushups/v_HandStandPushups_g01_c01.avi\r\n")
    return splits


def test_ucf101_lists(tmp_path, ucf_splits):
    frames = tmp_path / "frames"
    make_frames(frames, {"v_ApplyEyeMakeup_g08_c01": 7, "v_HandStandPushups_g08_c01": 5,
                         "v_ApplyEyeMakeup_g01_c01": 3, "v_HandStandPushups_g01_c01": 4,
                         "v_Stray_g01_c01": 2})
    (frames / "v_Half_g01_c01.partial").mkdir()  # an interrupted extraction is not a video
    out = tmp_path / "lists"
    report = filelists.build_file_lists("ucf101", frames, ucf_splits, out, splits=(1, 2))
    train = filelists.read_file_list(out / "ucf101_train_split_1.txt")
    assert train == [VideoEntry("v_ApplyEyeMakeup_g08_c01", 7, 0),
                     VideoEntry("v_HandStandPushups_g08_c01", 5, 1)]
    assert filelists.read_file_list(out / "ucf101_val_split_2.txt") == [
        VideoEntry("v_ApplyEyeMakeup_g01_c01", 3, 0), VideoEntry("v_HandStandPushups_g01_c01", 4, 1)]
    assert (out / "ucf101_train_split_1.txt").read_text().startswith("v_ApplyEyeMakeup_g08_c01 7 0\n")
    assert report.missing == {1: ["v_Biking_g09_c01"], 2: ["v_Biking_g09_c01"]}
    assert report.missing_ids == ["v_Biking_g09_c01"]
    assert report.unlisted == ["v_Stray_g01_c01"]
    assert sorted(p.name for p in out.iterdir()) == [  # no temporary files left
        "ucf101_train_split_1.txt", "ucf101_train_split_2.txt",
        "ucf101_val_split_1.txt", "ucf101_val_split_2.txt"]


def test_ucf101_cli_reports_missing_and_unlisted(tmp_path, ucf_splits, capsys):
    frames = tmp_path / "frames"
    make_frames(frames, {"v_ApplyEyeMakeup_g08_c01": 7, "v_Stray_g01_c01": 2})
    rc = load_tool("build_file_list").main(["--dataset", "ucf101", "--frames", str(frames),
                                            "--splits-dir", str(ucf_splits),
                                            "--out", str(tmp_path / "lists"), "--split", "1"])
    assert rc == 0
    captured = capsys.readouterr()
    assert "in a split but not on disk: v_Biking_g09_c01" in captured.err
    assert "on disk but in no split: v_Stray_g01_c01" in captured.err
    assert "4 videos missing on disk, 1 on disk in no split" in captured.out


def test_ucf101_unknown_class_is_an_error(tmp_path, ucf_splits):
    (ucf_splits / "testlist01.txt").write_text("Juggling/v_Juggling_g01_c01.avi\n")
    with pytest.raises(filelists.FileListError, match=r"testlist01.txt:1: class 'Juggling'"):
        filelists.build_file_lists("ucf101", tmp_path, ucf_splits, tmp_path / "out", splits=(1,))


def test_hmdb51_lists(tmp_path):
    splits = tmp_path / "splits"
    splits.mkdir()
    for k in (1, 2):
        (splits / f"wave_test_split{k}.txt").write_text(
            "wave_a_0.avi 1 \nwave_b_0.avi 2 \nwave_c_0.avi 0 \n")
        (splits / f"brush_hair_test_split{k}.txt").write_text(
            f"brush_a_0.avi {k} \nbrush_b_0.avi {3 - k} \n")
    frames = tmp_path / "frames"
    make_frames(frames, {"wave_a_0": 3, "wave_b_0": 4, "wave_c_0": 5, "brush_a_0": 6, "brush_b_0": 7})
    report = filelists.build_file_lists("hmdb51", frames, splits, tmp_path / "out", splits=(1, 2))
    read = lambda name: filelists.read_file_list(tmp_path / "out" / name)  # noqa: E731
    # Labels are the sorted class names: brush_hair 0, wave 1.
    assert read("hmdb51_train_split_1.txt") == [VideoEntry("brush_a_0", 6, 0), VideoEntry("wave_a_0", 3, 1)]
    assert read("hmdb51_val_split_1.txt") == [VideoEntry("brush_b_0", 7, 0), VideoEntry("wave_b_0", 4, 1)]
    assert read("hmdb51_train_split_2.txt")[0] == VideoEntry("brush_b_0", 7, 0)
    assert report.unlisted == [] and report.missing_ids == []  # wave_c_0 (0 = unused) is known


def test_kinetics_lists(tmp_path):
    splits = tmp_path / "annotations"
    splits.mkdir()
    (splits / "train.csv").write_text(
        "label,youtube_id,time_start,time_end,split\n"
        '"zumba",abc,14,24,train\n'
        '"abseiling",def-_1,0,10,train\n'
        '"playing cards, magic",ghi,5,15,train\n')
    (splits / "validate.csv").write_text(
        "label,youtube_id,time_start,time_end,split\nabseiling,jkl,100,110,val\n")
    (splits / "test.csv").write_text("youtube_id,time_start,time_end,split\nmno,1,11,test\n")
    frames = tmp_path / "frames"
    make_frames(frames, {"abc_000014_000024": 250, "def-_1_000000_000010": 300,
                         "jkl_000100_000110": 10, "mno_000001_000011": 9})
    report = filelists.build_file_lists("kinetics", frames, splits, tmp_path / "out")
    train = filelists.read_file_list(tmp_path / "out" / "kinetics_train_split_1.txt")
    assert train == [VideoEntry("abc_000014_000024", 250, 2), VideoEntry("def-_1_000000_000010", 300, 0)]
    assert filelists.read_file_list(tmp_path / "out" / "kinetics_val_split_1.txt") == [
        VideoEntry("jkl_000100_000110", 10, 0)]
    assert report.missing_ids == ["ghi_000005_000015"]
    assert report.unlisted == []  # the test video is in the test split


@pytest.mark.parametrize("text, message", [
    ("a 3 0\nb 3\n", r":2: expected 'video_id num_frames label'"),
    ("a 3 0\n\nb three 1\n", r":3: num_frames and label must be integers"),
    ("a 0 0\n", r":1: need num_frames >= 1"),
    ("", r"the file list is empty"),
    ("\n\n", r"the file list is empty"),
])
def test_read_file_list_errors(tmp_path, text, message):
    path = tmp_path / "list.txt"
    path.write_text(text)
    with pytest.raises(filelists.FileListError, match=message):
        filelists.read_file_list(path)


def test_count_frames(tmp_path):
    make_frames(tmp_path, {"v": 3})
    assert filelists.count_frames(tmp_path, "v") == 3
    assert filelists.count_frames(tmp_path, "absent") == 0


def make_flow(root, counts):
    """Flow folders with `count` flow_x/flow_y pairs each (and an RGB frame)."""
    make_folders(root, counts, ("flow_x_{:05d}.jpg", "flow_y_{:05d}.jpg"), "img_00001.jpg")


def test_flow_lists_count_flow_x_files(tmp_path, ucf_splits, capsys):
    flow = tmp_path / "flow"
    make_flow(flow, {"v_ApplyEyeMakeup_g08_c01": 6, "v_HandStandPushups_g08_c01": 4,
                     "v_ApplyEyeMakeup_g01_c01": 2})
    assert filelists.count_frames(flow, "v_ApplyEyeMakeup_g08_c01", "flow") == 6
    assert filelists.count_frames(flow, "v_ApplyEyeMakeup_g08_c01") == 1  # rgb counts img_
    out = tmp_path / "lists"
    rc = load_tool("build_file_list").main(["--dataset", "ucf101", "--modality", "flow",
                                            "--frames", str(flow), "--splits-dir", str(ucf_splits),
                                            "--out", str(out), "--split", "1"])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["ucf101_flow_train_split_1.txt",
                                                    "ucf101_flow_val_split_1.txt"]
    assert filelists.read_file_list(out / "ucf101_flow_train_split_1.txt") == [
        VideoEntry("v_ApplyEyeMakeup_g08_c01", 6, 0), VideoEntry("v_HandStandPushups_g08_c01", 4, 1)]
    assert filelists.read_file_list(out / "ucf101_flow_val_split_1.txt") == [
        VideoEntry("v_ApplyEyeMakeup_g01_c01", 2, 0)]
    assert "in a split but not on disk: v_HandStandPushups_g01_c01" in capsys.readouterr().err
    with pytest.raises(ValueError, match="modality"):
        filelists.build_file_lists("ucf101", flow, ucf_splits, out, modality="depth")


# ------------------------------------------------------------ bad split files

def _ucf_splits(tmp_path, train, test):
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "classInd.txt").write_text("1 Biking\n2 HandstandPushups\n")
    (splits / "trainlist01.txt").write_text(train)
    (splits / "testlist01.txt").write_text(test)
    frames_root = tmp_path / "frames"
    for vid in ("v_Biking_g01_c01", "v_Biking_g02_c01", "v_HandStandPushups_g01_c01"):
        (frames_root / vid).mkdir(parents=True)
        (frames_root / vid / "img_00001.jpg").write_bytes(b"x")
    return splits, frames_root


def _run_build(tmp_path, splits, frames_root, capsys):
    out = tmp_path / "lists"
    rc = load_tool("build_file_list").main(["--dataset", "ucf101", "--frames", str(frames_root),
                                           "--splits-dir", str(splits), "--out", str(out),
                                           "--split", "1"])
    return rc, capsys.readouterr().err, out


def test_a_video_in_train_and_test_is_refused(tmp_path, capsys):
    splits, frames_root = _ucf_splits(
        tmp_path, "Biking/v_Biking_g01_c01.avi 1\nBiking/v_Biking_g02_c01.avi 1\n",
        "Biking/v_Biking_g02_c01.avi\nHandstandPushups/v_HandStandPushups_g01_c01.avi\n")
    rc, err, out = _run_build(tmp_path, splits, frames_root, capsys)
    assert rc == 2 and "train/test leak" in err and "v_Biking_g02_c01" in err
    assert not out.exists()  # no list written


@pytest.mark.parametrize("train, message", [
    ("Biking/v_Biking_g01_c01.avi 1\nBiking/v_Biking_g01_c01.avi 1\n",
     "split 1 train: listed more than once: v_Biking_g01_c01"),
    ("Biking/v_Biking_g01_c01.avi 1\nBiking/v_Biking_g02_c01.avi 2\n",
     "{trainlist}:2: class index 2 disagrees with classInd.txt"),
    ("Biking/v_Biking_g01_c01.avi 1\nBiking/v_Biking g02_c01.avi 1\n",
     "{trainlist}:2: video id 'v_Biking g02_c01' contains whitespace"),
], ids=["twice in one split", "label disagrees with classInd", "path with a space"])
def test_a_bad_train_split_is_refused_naming_the_line(tmp_path, capsys, train, message):
    splits, frames_root = _ucf_splits(tmp_path, train,
                                      "HandstandPushups/v_HandStandPushups_g01_c01.avi\n")
    rc, err, out = _run_build(tmp_path, splits, frames_root, capsys)
    assert rc == 2
    assert message.format(trainlist=splits / "trainlist01.txt") in err
    assert not out.exists()


def test_split_lines_with_and_without_a_class_index():
    classes = {"biking": 0}
    assert filelists._ucf101_entry("t", 1, "Biking/v_Biking_g01_c01.avi 1", classes) == \
        ("v_Biking_g01_c01", 0)
    assert filelists._ucf101_entry("t", 1, "Biking/v_Biking_g01_c01.avi", classes) == \
        ("v_Biking_g01_c01", 0)
