"""TSN file lists: one line per video, `video_id num_frames label`.

Labels are 0-based; num_frames is the number of `img_*.jpg` files in
`<frames root>/<video_id>/` (modality rgb) or, as TSN counts flow, of
`flow_x_*.jpg` files in `<flow root>/<video_id>/` (modality flow). Split
parsers for UCF101, HMDB51 and Kinetics produce (video_id, label) pairs;
`build_file_lists` joins them with the counts on disk and writes
`<dataset>_{train,val}_split_<k>.txt` (flow: `<dataset>_flow_{train,val}_split_<k>.txt`).
"""
import csv
import os
import re
from collections import namedtuple
from dataclasses import dataclass, field
from pathlib import Path

from dcd.data.frames import PARTIAL_SUFFIX
from dcd.util.fileio import write_atomic

DATASETS = ("ucf101", "hmdb51", "kinetics")
MODALITIES = ("rgb", "flow")  # what is stored: frames or TSN flow pairs
# The files counted per modality (TSN counts flow_x for flow).
COUNTED_PREFIX = {"rgb": "img_", "flow": "flow_x_"}
VideoEntry = namedtuple("VideoEntry", "video_id num_frames label")


class FileListError(ValueError):
    """A file list or split file that cannot be parsed."""


# ----------------------------------------------------------------- list files

def read_file_list(path):
    """Parse a file list into VideoEntry tuples; errors name the file and line."""
    entries = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 3:
                raise FileListError(f"{path}:{number}: expected 'video_id num_frames label', "
                                    f"got {line.rstrip()!r}")
            try:
                num_frames, label = int(fields[1]), int(fields[2])
            except ValueError:
                raise FileListError(f"{path}:{number}: num_frames and label must be integers, "
                                    f"got {line.rstrip()!r}") from None
            if num_frames < 1 or label < 0:
                raise FileListError(f"{path}:{number}: need num_frames >= 1 and label >= 0, "
                                    f"got {line.rstrip()!r}")
            entries.append(VideoEntry(fields[0], num_frames, label))
    if not entries:
        raise FileListError(f"{path}: the file list is empty")
    return entries


def line_number(path, video_id):
    """The first line of a file list that names `video_id` (for messages); 0 if none."""
    with open(path) as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if fields and fields[0] == video_id:
                return number
    return 0


def unique_entries(entries, log=None):
    """Drop repeats of a video (e.g. train and val lists combined); a video
    listed twice with different frame counts or labels is an error."""
    seen, unique = {}, []
    for entry in entries:
        previous = seen.get(entry.video_id)
        if previous is None:
            seen[entry.video_id] = entry
            unique.append(entry)
        elif previous != entry:
            raise ValueError(f"video {entry.video_id} is listed twice with different "
                             f"frame counts or labels: {tuple(previous)} vs {tuple(entry)}")
    if log and len(unique) < len(entries):
        log(f"note: {len(entries) - len(unique)} repeated line(s) in the list are used once")
    return unique


def write_file_list(path, entries):
    write_atomic(path, "".join(f"{e.video_id} {e.num_frames} {e.label}\n" for e in entries))


# ------------------------------------------------------------- frames on disk

def count_frames(frames_root, video_id, modality="rgb"):
    """Number of img_*.jpg (flow: flow_x_*.jpg) files in the video's folder;
    0 when the folder is absent."""
    prefix = COUNTED_PREFIX[modality]
    try:
        with os.scandir(Path(frames_root) / video_id) as it:
            return sum(1 for e in it if e.name.startswith(prefix) and e.name.endswith(".jpg"))
    except (FileNotFoundError, NotADirectoryError):
        return 0


def videos_on_disk(frames_root):
    """Complete frame folders (interrupted `.partial` ones excluded)."""
    with os.scandir(frames_root) as it:
        return {e.name for e in it
                if e.is_dir() and not e.name.endswith(PARTIAL_SUFFIX) and not e.name.startswith(".")}


# -------------------------------------------------------------- split parsers
# Each returns {split_number: {"train": [(video_id, label)], "val": [...]}}
# and the set of every video id the annotations know (for "on disk in no split").

def _lines(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return [(n, line.strip()) for n, line in enumerate(f, 1) if line.strip()]


def _read_ucf101_classes(splits_dir):
    path = Path(splits_dir) / "classInd.txt"
    classes = {}
    for number, line in _lines(path):
        fields = line.split()
        if len(fields) != 2 or not fields[0].isdigit():
            raise FileListError(f"{path}:{number}: expected '<index> <class>', got {line!r}")
        # UCF101's own names disagree in case (HandstandPushups vs HandStandPushups).
        classes[fields[1].lower()] = int(fields[0]) - 1
    if not classes:
        raise FileListError(f"{path}: no classes")
    return classes


def _ucf101_entry(path, number, line, classes):
    # "<Class>/<video>.avi" with an optional 1-based class index (trainlist);
    # the path is all but that index, so a name with a space is read whole.
    match = re.match(r"^(?P<path>.*?)(?:\s+(?P<index>\d+))?$", line.strip())
    relative, index = match["path"], match["index"]
    parts = relative.replace("\\", "/").split("/")
    if len(parts) < 2:
        raise FileListError(f"{path}:{number}: expected '<Class>/<video>.avi', got {line!r}")
    label = classes.get(parts[-2].lower())
    if label is None:
        raise FileListError(f"{path}:{number}: class {parts[-2]!r} is not in classInd.txt")
    if index is not None and int(index) - 1 != label:
        raise FileListError(f"{path}:{number}: class index {index} disagrees with classInd.txt, "
                            f"where {parts[-2]} is {label + 1}; fix the split file")
    video_id = Path(parts[-1]).stem
    if any(c.isspace() for c in video_id):
        raise FileListError(f"{path}:{number}: video id {video_id!r} contains whitespace, which "
                            "a file list cannot hold; rename the video (and this line)")
    return video_id, label


def parse_ucf101(splits_dir, splits=(1, 2, 3)):
    splits_dir = Path(splits_dir)
    classes = _read_ucf101_classes(splits_dir)
    result, known = {}, set()
    for k in splits:
        result[k] = {}
        for part, name in (("train", f"trainlist{k:02d}.txt"), ("val", f"testlist{k:02d}.txt")):
            path = splits_dir / name
            if not path.exists():
                raise FileListError(f"{path}: split file not found")
            pairs = [_ucf101_entry(path, n, line, classes) for n, line in _lines(path)]
            result[k][part] = pairs
            known.update(vid for vid, _ in pairs)
    return result, known


HMDB_SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<k>\d+)\.txt$")


def parse_hmdb51(splits_dir, splits=(1, 2, 3)):
    """Per-class files `<class>_test_split<k>.txt`: `<video>.avi <0|1|2>`, 1 train, 2 test."""
    files = {}
    for path in Path(splits_dir).iterdir():
        match = HMDB_SPLIT_FILE.match(path.name)
        if match:
            files[(match["cls"], int(match["k"]))] = path
    class_names = sorted({cls for cls, _ in files})
    if not class_names:
        raise FileListError(f"{splits_dir}: no HMDB51 split files (<class>_test_split<k>.txt)")
    labels = {cls: i for i, cls in enumerate(class_names)}
    result, known = {}, set()
    for k in splits:
        result[k] = {"train": [], "val": []}
        for cls in class_names:
            path = files.get((cls, k))
            if path is None:
                raise FileListError(f"{splits_dir}: {cls}_test_split{k}.txt not found")
            for number, line in _lines(path):
                fields = line.split()
                if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                    raise FileListError(f"{path}:{number}: expected '<video>.avi <0|1|2>', got {line!r}")
                video_id = Path(fields[0]).stem
                known.add(video_id)
                if fields[1] == "1":
                    result[k]["train"].append((video_id, labels[cls]))
                elif fields[1] == "2":
                    result[k]["val"].append((video_id, labels[cls]))
    return result, known


KINETICS_SPLIT_NAMES = {"train": "train", "training": "train",
                        "val": "val", "valid": "val", "validate": "val", "validation": "val"}


def kinetics_video_id(youtube_id, time_start, time_end):
    return f"{youtube_id}_{int(float(time_start)):06d}_{int(float(time_end)):06d}"


def parse_kinetics(splits_dir, splits=(1,)):
    """Every *.csv in `splits_dir` (columns label,youtube_id,time_start,time_end,split).

    Labels are the sorted class names over all CSVs; rows of other splits
    (test, usually unlabelled) count as known videos but are not listed.
    Kinetics has one split, written as split 1.
    """
    rows = []
    paths = sorted(Path(splits_dir).glob("*.csv"))
    if not paths:
        raise FileListError(f"{splits_dir}: no Kinetics annotation CSVs")
    for path in paths:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = {"youtube_id", "time_start", "time_end", "split"} - set(reader.fieldnames or ())
            if missing:
                raise FileListError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
            for number, row in enumerate(reader, 2):
                try:
                    video_id = kinetics_video_id(row["youtube_id"], row["time_start"], row["time_end"])
                except (TypeError, ValueError):
                    raise FileListError(f"{path}:{number}: bad row {row}") from None
                rows.append((video_id, (row.get("label") or "").strip(),
                             KINETICS_SPLIT_NAMES.get(row["split"].strip().lower())))
    labels = {name: i for i, name in enumerate(sorted({lbl for _, lbl, part in rows if lbl and part}))}
    lists = {"train": [], "val": []}
    for video_id, label, part in rows:
        if part and label:
            lists[part].append((video_id, labels[label]))
    return {k: lists for k in splits}, {video_id for video_id, _, _ in rows}


PARSERS = {"ucf101": parse_ucf101, "hmdb51": parse_hmdb51, "kinetics": parse_kinetics}


# -------------------------------------------------------------- the lists

@dataclass
class FileListReport:
    written: dict = field(default_factory=dict)      # path -> number of entries
    missing: dict = field(default_factory=dict)      # split -> [video_id] in split, not on disk
    unlisted: list = field(default_factory=list)     # on disk, in no split

    @property
    def missing_ids(self):
        return sorted({vid for ids in self.missing.values() for vid in ids})


def _shown(ids, limit=20):
    ids = sorted(ids)
    return ", ".join(ids[:limit]) + (f", ... ({len(ids)} in all)" if len(ids) > limit else "")


def check_splits(per_split):
    """Refuse a split whose train and val parts share a video (a train/test
    leak) or that lists a video twice in one part, naming the videos."""
    problems = []
    for k in sorted(per_split):
        seen = {}
        for part in ("train", "val"):
            ids = [video_id for video_id, _ in per_split[k][part]]
            repeated = {v for v in ids if ids.count(v) > 1} if len(set(ids)) < len(ids) else set()
            if repeated:
                problems.append(f"split {k} {part}: listed more than once: {_shown(repeated)}")
            seen[part] = set(ids)
        both = seen["train"] & seen["val"]
        if both:
            problems.append(f"split {k}: in both train and val (a train/test leak): "
                            f"{_shown(both)}")
    if problems:
        raise FileListError("the split files are inconsistent, no list written:\n  "
                            + "\n  ".join(problems))


def list_path(out_dir, dataset, part, k, modality="rgb"):
    infix = "" if modality == "rgb" else f"{modality}_"
    return Path(out_dir) / f"{dataset}_{infix}{part}_split_{k}.txt"


def build_file_lists(dataset, frames_root, splits_dir, out_dir, splits=None, modality="rgb"):
    """Write `<dataset>_{train,val}_split_<k>.txt` for each split; returns a FileListReport.

    `modality` "flow": `frames_root` is a flow root (extract_flow), counts
    are flow pairs, and the lists are `<dataset>_flow_{train,val}_split_<k>.txt`.
    Videos in a split but absent (or empty) on disk are left out of the list
    and reported; so are frame folders that no split mentions.
    """
    if dataset not in PARSERS:
        raise ValueError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; choose from {', '.join(MODALITIES)}")
    if splits is None:
        splits = (1,) if dataset == "kinetics" else (1, 2, 3)
    per_split, known = PARSERS[dataset](splits_dir, splits)
    check_splits(per_split)
    report = FileListReport()
    counts = {}
    for k in splits:
        report.missing[k] = []
        for part in ("train", "val"):
            entries = []
            for video_id, label in per_split[k][part]:
                if video_id not in counts:
                    counts[video_id] = count_frames(frames_root, video_id, modality)
                if counts[video_id] == 0:
                    report.missing[k].append(video_id)
                    continue
                entries.append(VideoEntry(video_id, counts[video_id], label))
            path = list_path(out_dir, dataset, part, k, modality)
            write_file_list(path, entries)
            report.written[str(path)] = len(entries)
    report.unlisted = sorted(videos_on_disk(frames_root) - known)
    return report
