"""Every row of the paper's tables maps to nets that exist and a command, and
models/README.md lists them as tools/make_models.py writes them."""
import pytest

from dcd.paper import recipes
from dcd.nets.catalogue import NETS
from dcd.util.paths import REPO_ROOT
from dcd.paper.tables import load_tables


def test_every_row_has_a_recipe_naming_existing_nets():
    tables = load_tables()
    names = {(d, c.name) for d in NETS for c in NETS[d]}
    for table in tables.values():
        for row in table["rows"]:
            assert "reproduce" in row, f"Table {table['number']} row {row['id']} has no recipe"
    missing = recipes.recipe_nets(tables) - names
    assert not missing, f"recipes name nets that make_models does not build: {sorted(missing)}"


def test_fusion_commands():
    tables = load_tables()
    t6 = tables[6]
    row = next(r for r in t6["rows"] if r["id"] == "r4")
    assert recipes.fusion_command(t6, row, None, row["reproduce"]) == (
        "tools/eval_scores.py results/ucf101_static_split1.npz results/ucf101_motion_split1.npz "
        "--score_weights 1 1 --paper_ref T6/r4 --json results/T6_r4.json")
    t5 = tables[5]
    row = next(r for r in t5["rows"] if r["id"] == "full")
    cmd = recipes.fusion_command(t5, row, "w/o TSN", row["reproduce"]["w/o TSN"])
    assert "ucf101_static_notsn_split1.npz results/ucf101_motion_notsn_split1.npz" in cmd
    assert '--paper_ref "T5/full/w/o TSN"' in cmd
    t8 = tables[8]
    row = next(r for r in t8["rows"] if r["id"] == "ours")
    assert recipes.fusion_command(t8, row, None, row["reproduce"]).startswith(
        "tools/eval_scores.py results/kinetics_full.npz --paper_ref T8/ours")


@pytest.mark.parametrize("key,nets", [
    ("T3/disp112", ["static_1frame", "motion"]),   # TV-L1's 92.0% is TSN's two-stream
    ("T3/disp224", ["static_1frame", "motion_224"]),
    ("T6/r6", ["static", "motion", "appchange"]),
    ("T2/f16", ["static_16frames"]),
    ("T4/nowarp_rgb", ["appchange_rgbdiff_1pair"]),  # one pair, as the other Table 4 rows
])
def test_rows_pair_with_the_fusion_that_reproduces_them(key, nets):
    number, row_id = key[1:].split("/")
    row = next(r for r in load_tables()[int(number)]["rows"] if r["id"] == row_id)
    rec = row["reproduce"].get("Accuracy", row["reproduce"])  # Table 3: per column
    assert rec["scores"] == nets


def test_models_readme_lists_the_current_commands():
    text = (REPO_ROOT / "models/README.md").read_text()
    begin, end = text.index(recipes.RECIPES_BEGIN), text.index(recipes.RECIPES_END)
    section = text[begin:end + len(recipes.RECIPES_END)]
    assert section == recipes.recipes_markdown(), "run tools/make_models.py"


# Table 6 (Sec. 4.3): which branches each row fuses, and TSN's 1.5 for the
# TV-L1 flow stream (the others 1). Written out here, not read from the
# JSON, so that a wrong weight or pairing in data/paper_tables.json fails.
TABLE6 = {
    "r1": (["static", "flow"], [1, 1.5]),
    "r2": (["static", "flow", "appchange_rgbdiff"], [1, 1.5, 1]),
    "r3": (["static", "flow", "appchange"], [1, 1.5, 1]),
    "r4": (["static", "motion"], [1, 1]),
    "r5": (["static", "motion", "appchange_rgbdiff"], [1, 1, 1]),
    "r6": (["static", "motion", "appchange"], [1, 1, 1]),
}


def test_table6_fusion_weights_and_pairings():
    t6 = load_tables()[6]
    assert [r["id"] for r in t6["rows"]] == list(TABLE6)
    for row in t6["rows"]:
        nets, weights = TABLE6[row["id"]]
        rec = row["reproduce"]
        assert rec["scores"] == nets, row["id"]
        assert rec.get("weights") == weights, row["id"]
        # the ticks of the paper's row name the same branches
        ticked = {c for c, v in row["cells"].items() if v == "\u2713"}
        kinds = {"static": "Static App.", "flow": "Motion: TV-L1", "motion": "Motion: Disp. Map",
                 "appchange_rgbdiff": "App. change: RGB-Diff",
                 "appchange": "App. change: Warped-Diff"}
        assert ticked == {kinds[n] for n in nets}, row["id"]
        cmd = recipes.fusion_command(t6, row, None, rec)
        assert "--score_weights " + " ".join(f"{w:g}" for w in weights) in cmd


def test_fusion_command_writes_the_weights_in_file_order():
    table = {"number": 6, "dataset": "ucf101", "values": {}}
    row = {"id": "rx"}
    cmd = recipes.fusion_command(table, row, None, {"scores": ["a", "b", "c"],
                                                    "weights": [1, 1.5, 0.25]})
    assert cmd.startswith("tools/eval_scores.py results/ucf101_a_split1.npz "
                          "results/ucf101_b_split1.npz results/ucf101_c_split1.npz "
                          "--score_weights 1 1.5 0.25 --paper_ref T6/rx")
    single = recipes.fusion_command(table, row, None, {"scores": ["a"]})
    assert "--score_weights" not in single


def test_other_readings_get_their_own_commands():
    t7 = load_tables()[7]
    entries = [(row, col, rec) for row, col, rec in recipes.row_recipes(t7)
               if row["id"] == "ours_imagenet"]
    readings = [rec.get("reading") for _, _, rec in entries]
    assert readings == [None, "late", "finetune", "relu"]
    late = entries[1][2]
    assert late["scores"] == ["static", "motion", "appchange"] and late["weights"] == [1, 1, 1]
    cmds = [recipes.fusion_command(t7, row, col, rec) for row, col, rec in entries]
    assert len({c.split("--json ")[1] for c in cmds}) == 4  # four result files
    assert "results/ucf101_full_finetune_split1_from_branches.npz" in cmds[2]
    t3 = load_tables()[3]
    fps = [rec for row, col, rec in recipes.row_recipes(t3) if col == "FPS"]
    assert [r["benchmark"] for r in fps] == ["tools/benchmark_flow.py",
                                             "tools/benchmark.py --table 3",
                                             "tools/benchmark.py --table 3"]
