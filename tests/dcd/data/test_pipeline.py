"""End to end through the three command-line tools on real videos:
videos -> frames -> file lists -> LMDB -> frames read back."""
import lmdb
from caffe.proto import caffe_pb2
from datahelpers import SMALL, decode_video, load_tool, mean_abs_diff

from dcd.data import frames
from dcd.data.filelists import VideoEntry, read_file_list
from dcd.data.lmdb_store import list_videos, read_video_frames

VIDEO_IDS = ("v_Biking_g01_c01", "v_HandStandPushups_g01_c01")


def test_videos_to_lmdb_and_back(ucf_videos, tmp_path, capsys):
    out_frames, lists, db = tmp_path / "frames", tmp_path / "lists", tmp_path / "db"
    size = ["--width", str(SMALL["width"]), "--height", str(SMALL["height"])]
    assert load_tool("extract_frames").main(
        [str(ucf_videos), str(out_frames), "--workers", "2", "--no-progress"] + size) == 0

    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Biking\n3 HandstandPushups\n")
    (splits / "trainlist01.txt").write_text("Biking/v_Biking_g01_c01.avi 2\n")
    (splits / "testlist01.txt").write_text("HandstandPushups/v_HandStandPushups_g01_c01.avi\n")
    assert load_tool("build_file_list").main(
        ["--dataset", "ucf101", "--frames", str(out_frames), "--splits-dir", str(splits),
         "--out", str(lists), "--split", "1"]) == 0

    decoded = {frames.video_id_of(v): decode_video(v) for v in frames.find_videos(ucf_videos)}
    train = read_file_list(lists / "ucf101_train_split_1.txt")
    val = read_file_list(lists / "ucf101_val_split_1.txt")
    assert train == [VideoEntry("v_Biking_g01_c01", len(decoded["v_Biking_g01_c01"]), 1)]
    assert val == [VideoEntry("v_HandStandPushups_g01_c01", len(decoded["v_HandStandPushups_g01_c01"]), 2)]

    list_args = ["--frames", str(out_frames), "--list", str(lists / "ucf101_train_split_1.txt"),
                 str(lists / "ucf101_val_split_1.txt"), "--out", str(db), "--no-progress"]
    assert load_tool("build_lmdb").main(list_args) == 0
    assert "2 videos written" in capsys.readouterr().out
    assert load_tool("build_lmdb").main(list_args) == 0
    assert "0 videos written (0 frames), 2 already complete" in capsys.readouterr().out

    assert list_videos(db) == {vid: len(decoded[vid]) for vid in VIDEO_IDS}
    labels = {"v_Biking_g01_c01": 1, "v_HandStandPushups_g01_c01": 2}
    import cv2
    for video_id in VIDEO_IDS:
        images, label = read_video_frames(db, video_id)
        assert label == labels[video_id]
        assert len(images) == len(decoded[video_id])
        for image, original in zip(images, decoded[video_id]):
            expected = cv2.resize(original, (SMALL["width"], SMALL["height"]))
            assert mean_abs_diff(image, expected) < 3

    env = lmdb.open(str(db), readonly=True)
    with env.begin() as txn:
        assert txn.get(b"__video__/v_Biking_g01_c01") == str(len(decoded["v_Biking_g01_c01"])).encode()
        datum = caffe_pb2.Datum()
        datum.ParseFromString(txn.get(b"v_HandStandPushups_g01_c01/img_00001.jpg"))
    env.close()
    assert (datum.encoded, datum.channels, datum.height, datum.width, datum.label) == (
        True, 3, SMALL["height"], SMALL["width"], 2)
    assert datum.data == (out_frames / "v_HandStandPushups_g01_c01" / "img_00001.jpg").read_bytes()
