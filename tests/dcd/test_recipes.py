"""Every row of the paper's tables maps to nets that exist and a command, and
models/README.md lists them as tools/make_models.py writes them."""
import pytest

from dcd import recipes
from dcd.nets.dcd import NETS
from dcd.paths import REPO_ROOT
from dcd.report import load_tables


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
])
def test_rows_pair_with_the_fusion_that_reproduces_them(key, nets):
    number, row_id = key[1:].split("/")
    row = next(r for r in load_tables()[int(number)]["rows"] if r["id"] == row_id)
    assert row["reproduce"]["scores"] == nets


def test_models_readme_lists_the_current_commands():
    text = (REPO_ROOT / "models/README.md").read_text()
    begin, end = text.index(recipes.RECIPES_BEGIN), text.index(recipes.RECIPES_END)
    section = text[begin:end + len(recipes.RECIPES_END)]
    assert section == recipes.recipes_markdown(), "run tools/make_models.py"
