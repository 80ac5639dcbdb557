"""The demo's checks on hand-made inputs, without training anything:
expectations() at and around its limits, worst_and_mean() across seeds, and
displacement_errors() against maps whose errors are known."""
import numpy as np
import pytest

from dcd.demo import pipeline as demo
from dcd.demo.pipeline import DemoResult, Expectation, Row, expectations, worst_and_mean

SINGLES = ("static appearance", "apparent motion", "appearance change (warped diff.)")


def _result(**over):
    """A DemoResult where every expectation holds with some margin; `over`
    sets factor accuracies ('static.direction'), class accuracies (row
    labels) or the joint map's errors ('object_epe', 'background_v')."""
    factors = {
        "static": {"background": 0.99, "direction": 0.50, "flicker": 0.5},
        "motion": {"background": 0.5, "direction": 0.99, "flicker": 0.9},
        "appchange": {"background": 0.5, "direction": 0.50, "flicker": 0.99},
        "appchange_rgbdiff": {"background": 0.5, "direction": 0.95, "flicker": 0.99},
    }
    accuracies = {"static appearance": 0.25, "apparent motion": 0.48,
                  "appearance change (warped diff.)": 0.25, "all three fused": 0.97,
                  "joint model (one net)": 1.0}
    disp = {"object_epe": 0.14, "background_v": 0.20, "object_along": 1.9}
    for key, value in over.items():
        if key.split(".")[0] in factors:
            net, factor = key.split(".")
            factors[net][factor] = value
        elif key in disp:
            disp[key] = value
        else:
            accuracies[key] = value
    return DemoResult(rows=[Row(label, (), acc) for label, acc in accuracies.items()],
                      factors=factors, displacement={"full": disp})


def _by_name(checks):
    return {c.name: c for c in checks}


def test_all_hold_on_a_good_run():
    checks = expectations(_result())
    assert len(checks) == 11
    assert all(c.held for c in checks), [c.text for c in checks if not c.held]


# (what is set, value exactly at the limit, a value just past it, the check's name)
BOUNDARIES = [
    ("motion.direction", 0.90, 0.89, "direction: apparent motion"),
    ("static.direction", 0.65, 0.66, "direction: static appearance"),
    ("appchange.direction", 0.65, 0.66, "direction: warped difference"),
    ("static.background", 0.90, 0.89, "background tint: static appearance"),
    ("appchange.flicker", 0.90, 0.89, "flicker: warped difference"),
    ("appchange_rgbdiff.direction", 0.75, 0.74, "direction: stacked RGB difference"),
    ("all three fused", 0.90, 0.89, "all three fused"),
    ("joint model (one net)", 0.90, 0.89, "joint model"),
    ("object_epe", 0.5, 0.51, "joint displacement map: object end-point error (px)"),
    ("background_v", 0.25, 0.26, "joint displacement map: background mean |V| (px)"),
]


@pytest.mark.parametrize("key,at,past,name", BOUNDARIES)
def test_each_limit_holds_at_the_limit_and_fails_past_it(key, at, past, name):
    at_limit = _by_name(expectations(_result(**{key: at})))
    assert at_limit[name].held and at_limit[name].value == pytest.approx(at)
    past_limit = expectations(_result(**{key: past}))
    failed = [c.name for c in past_limit if not c.held]
    assert name in failed, failed
    # Only that check (and the compound RGB-difference one, which repeats
    # the warped difference's direction limit) fails.
    assert set(failed) <= {name, "direction: stacked RGB difference"}


def test_the_rgb_difference_check_also_needs_the_warped_difference_blind_to_direction():
    checks = _by_name(expectations(_result(**{"appchange.direction": 0.70})))
    assert not checks["direction: stacked RGB difference"].held
    assert not checks["direction: warped difference"].held


def test_fusion_must_reach_every_single_branch():
    name = "all three fused - best single branch"
    equal = _by_name(expectations(_result(**{"apparent motion": 0.97})))
    assert equal[name].held and equal[name].value == pytest.approx(0.0)
    for single in SINGLES:
        beaten = _by_name(expectations(_result(**{single: 0.98})))
        assert not beaten[name].held, single
        assert beaten[name].value == pytest.approx(-0.01)


def test_displacement_checks_only_with_the_joint_map():
    result = _result()
    result.displacement = {}
    assert len(expectations(result)) == 9


def test_worst_and_mean_across_seeds():
    runs = [expectations(_result(**{"all three fused": f, "static.direction": d}))
            for f, d in ((0.97, 0.50), (0.91, 0.64), (0.88, 0.55))]
    rows = {r[0]: r for r in worst_and_mean(runs)}
    name, op, limit, worst, mean, held, n = rows["all three fused"]
    assert (op, limit, held, n) == (">=", 0.90, 2, 3)
    assert worst == pytest.approx(0.88) and mean == pytest.approx((0.97 + 0.91 + 0.88) / 3)
    _, op, _, worst, mean, held, _ = rows["direction: static appearance"]
    assert op == "<=" and worst == pytest.approx(0.64) and held == 3  # worst of <= is the max
    assert mean == pytest.approx((0.50 + 0.64 + 0.55) / 3)
    table = demo.format_seed_table([0, 1, 2], runs)
    assert "| all three fused | >= 90.0% | 88.0% | 92.0% | 2/3 | 97.0% | 91.0% | 88.0% |" in table


def test_worst_and_mean_refuses_runs_with_other_checks():
    full = expectations(_result())
    result = _result()
    result.displacement = {}
    with pytest.raises(ValueError, match="run 1 checks other expectations"):
        worst_and_mean([full, expectations(result)])


def test_an_unknown_comparison_is_refused():
    with pytest.raises(ValueError, match="op must be"):
        demo._check("x", 1.0, ">", 0.5)
    assert Expectation("t", True).op == ">="


# ------------------------------------------------- displacement_errors

class _FakeNet:
    """What displacement_errors reads of a deploy net: its input shape."""
    inputs = ["data"]

    def __init__(self, crop):
        self.blobs = {"data": type("Blob", (), {"data": np.zeros((2, 3, crop, crop))})()}


@pytest.fixture
def fake_net(monkeypatch):
    """displacement_errors with a net whose map is made by `maker(info, frames)`
    at half the crop (as the demo's stride-2 conv1), in half-resolution pixels;
    `info` is the ground truth of the clip being measured."""
    import dcd.data.synthetic
    import dcd.demo.figure5
    state = {}
    make_clip = dcd.data.synthetic.make_clip

    def recording_make_clip(label, rng, spec=dcd.data.synthetic.ClipSpec(), info=None):
        state["info"] = info
        return make_clip(label, rng, spec, info)

    def use(maker, crop=56):
        monkeypatch.setattr(dcd.demo.figure5, "load_deploy", lambda deploy, weights: _FakeNet(crop))
        monkeypatch.setattr(dcd.data.synthetic, "make_clip", recording_make_clip)

        def net_displacement(net, frames, layer):
            assert frames.shape[:3] == (2, crop, crop) and layer == "motion/displacement"
            return maker(state["info"], crop // 2)
        monkeypatch.setattr(dcd.demo.figure5, "net_displacement", net_displacement)
        return demo.displacement_errors("deploy", "weights", clips=8)
    return use


def _uniform(vx):
    """A map of one horizontal displacement everywhere (half-resolution px)."""
    def maker(info, size):
        v = np.zeros((1, 2, size, size), np.float32)
        v[0, 1] = vx(info)
        return v
    return maker


def _direction(info):
    return np.sign(info["x"][1] - info["x"][0])


def test_displacement_errors_of_the_true_motion(fake_net):
    # The object's true motion (2 px = 1 px at half resolution) everywhere:
    # exact on the object, 2 px of spurious motion on the background.
    e = fake_net(_uniform(lambda info: _direction(info)))
    assert e["object_epe"] == pytest.approx(0.0, abs=1e-6)
    assert e["object_along"] == pytest.approx(2.0)
    assert e["background_v"] == pytest.approx(2.0)


def test_displacement_errors_of_the_reversed_motion(fake_net):
    e = fake_net(_uniform(lambda info: -_direction(info)))
    assert e["object_epe"] == pytest.approx(4.0)
    assert e["object_along"] == pytest.approx(-2.0)
    assert e["background_v"] == pytest.approx(2.0)


def test_displacement_errors_of_no_motion(fake_net):
    e = fake_net(_uniform(lambda info: 0.0))
    assert e["object_epe"] == pytest.approx(2.0)
    assert e["object_along"] == pytest.approx(0.0)
    assert e["background_v"] == pytest.approx(0.0)


def test_each_seed_has_its_own_data_directory(tmp_path):
    from dcd.util.paths import REPO_ROOT
    assert demo.DemoConfig().data == REPO_ROOT / "data" / "synthetic"
    # the nets read data/synthetic/ under the directory caffe runs in
    assert demo.DemoConfig(seed=3).root == REPO_ROOT / "data" / "demo_seed3"
    assert demo.DemoConfig(seed=3).data == REPO_ROOT / "data" / "demo_seed3" / "data" / "synthetic"
    assert demo.DemoConfig(root=tmp_path, seed=3).data == tmp_path / "data" / "synthetic"


def test_demo_tool_refuses_a_repeated_seed(capsys):
    from toolhelpers import load_tool
    with pytest.raises(SystemExit) as exit_:
        load_tool("demo").main(["--seeds", "1", "1"])
    assert exit_.value.code == 2 and "each seed once" in capsys.readouterr().err
