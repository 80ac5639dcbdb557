"""A reduced `make demo`: fewer clips and iterations, three branches."""
import pytest

import caffe  # noqa: F401  (built by `make`; missing is an error, not a skip)

from dcd.demo.pipeline import CHANCE, DemoConfig, run

pytestmark = pytest.mark.slow  # trains three nets with caffe


@pytest.fixture(scope="module")
def reduced(tmp_path_factory):
    # One process at a time (jobs=1): the test suite already runs on every
    # core, and scoring in-process saves the workers' imports of caffe.
    cfg = DemoConfig(root=tmp_path_factory.mktemp("demo"), per_class=(16, 2, 6),
                     iterations=75, num_snippets=4, progress=False,
                     nets=("static", "motion", "appchange"), jobs=1)
    return cfg, run(cfg)


def test_motion_branch_clearly_above_chance(reduced):
    _, result = reduced
    assert result.accuracy("apparent motion") >= 3 * CHANCE
    # It is the only single branch that reads the direction of motion.
    assert result.factors["motion"]["direction"] >= 0.8
    assert result.factors["static"]["direction"] <= 0.7
    assert result.factors["appchange"]["direction"] <= 0.7


def test_static_branch_reads_the_tint(reduced):
    # A short run gives the static net, at half the rate, twice the
    # iterations (pipeline._solver_for): with 75 it learned nothing.
    _, result = reduced
    assert result.factors["static"]["background"] >= 0.8


def test_three_branch_fusion_beats_every_single_branch(reduced):
    _, result = reduced
    fused = result.accuracy("all three fused")
    for single in ("static appearance", "apparent motion", "appearance change (warped diff.)"):
        assert fused > result.accuracy(single), (single, result.rows)


def test_rerun_reuses_every_stage(reduced):
    cfg, first = reduced
    weights = sorted((cfg.data / "snapshots").glob("*.caffemodel"))
    mtimes = [w.stat().st_mtime_ns for w in weights]
    again = run(cfg)
    assert [w.stat().st_mtime_ns for w in weights] == mtimes
    assert [r.accuracy for r in again.rows] == [r.accuracy for r in first.rows]
