"""Report: paper tables file integrity and a rendered table from fixtures."""
import json

import pytest

from dcd.paper import report
from dcd.paper import tables as tables_mod
from toolhelpers import load_tool


def test_paper_tables_file():
    tables = tables_mod.load_tables()
    assert sorted(tables) == list(range(1, 10))
    # Spot checks against the paper text.
    t = tables
    assert t[1]["rows"][3]["cells"]["Accuracy"] == 86.5
    assert [r["cells"]["Accuracy"] for r in t[2]["rows"]] == [84.5, 85.4, 85.6, 86.8, 87.4]
    assert t[3]["rows"][7]["cells"] == {"Method": "Disp. Map (224 × 224)", "Accuracy": 89.6,
                                        "FPS": 53}
    assert t[5]["rows"][2]["cells"]["w/ TSN"] == 91.2
    assert [r["cells"]["Accuracy"] for r in t[6]["rows"]] == [94.0, 93.8, 94.1, 91.2, 91.5, 91.3]
    assert t[7]["rows"][-1]["cells"]["Accuracy"] == 95.9
    assert t[8]["rows"][-1]["cells"] == {"Method": "Ours", "Top-1": 71.5, "Top-5": 89.9}
    assert t[9]["rows"][0]["cells"]["Motion"] == {"shared": 15.4, "branch": 3.33}
    for table in tables.values():
        for row in table["rows"]:
            assert row["ref"].startswith(f"Table {table['number']}, row ")
            assert set(row["cells"]) <= set(table["columns"])


def test_report_renders_measured_beside_paper(tmp_path):
    (tmp_path / "full.json").write_text(json.dumps(
        {"top1": 0.9, "top5": 0.99, "mean_class_accuracy": 0.8766, "paper_ref": "T5/full/w/ TSN"}))
    (tmp_path / "kin.json").write_text(json.dumps(
        {"top1": 0.7, "top5": 0.88, "mean_class_accuracy": 0.69}))
    bench = {"device": "CPU (test)", "batch_sizes": [1], "nets": {
        "static": {"results": {"1": {"ms_per_frame": 2.0, "fps": 500.0}}},
        "motion": {"results": {"1": {"ms_per_frame": 30.0, "fps": 33.3,
                                     "disp_ms_per_frame": 20.0, "branch_ms_per_frame": 10.0}}}}}
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    out = tmp_path / "report.md"
    assert load_tool("report").main([str(tmp_path / "full.json"),
                                     f"T8/ours={tmp_path / 'kin.json'}",
                                     "--benchmark", str(tmp_path / "bench.json"),
                                     "--out", str(out)]) == 0
    text = out.read_text()
    assert "| Branch | w/o TSN (paper) | w/o TSN (ours) | w/ TSN (paper) | w/ TSN (ours) |" in text
    assert "| Full model | 89.5% |  | 91.2% | **87.7%** |" in text
    assert "| Ours | 71.5% | **70.0%** | 89.9% | **88.0%** |" in text
    assert "| ms/frame (paper, NVIDIA TITAN X; displacement map 224×224) | 1.19 | (15.4)+3.33 |" in text
    assert "**(20)+10**" in text and "**500**" in text
    for n in range(1, 10):
        assert f"### Table {n}" in text


def test_bad_references_are_explained():
    tables = tables_mod.load_tables()
    with pytest.raises(tables_mod.ReportError, match="several value columns"):
        tables_mod.resolve_key(tables, "T5/full")
    with pytest.raises(tables_mod.ReportError, match="rows: r1, r2"):
        tables_mod.resolve_key(tables, "T6/r9")
    assert tables_mod.resolve_key(tables, "T6/r4") == (6, "r4", "Accuracy")
    with pytest.raises(tables_mod.ReportError, match="no paper reference"):
        report.collect(tables, [(None, {"top1": 1}, "x.json")])


def test_three_splits_are_averaged_where_the_table_is(tmp_path):
    tables = tables_mod.load_tables()
    summaries = [("T7/ours_imagenet", {"mean_class_accuracy": a}, f"split{k}.json")
                 for k, a in ((1, 0.90), (2, 0.92), (3, 0.94))]
    measured = report.collect(tables, summaries)
    value, source, ci = measured[(7, "ours_imagenet", "Accuracy")]
    assert value == pytest.approx(92.0) and "(mean of 3)" in source and ci is None
    with pytest.raises(tables_mod.ReportError, match="given twice"):
        report.collect(tables, [("T6/r4", {"mean_class_accuracy": 0.9}, "a.json"),
                                ("T6/r4", {"mean_class_accuracy": 0.8}, "b.json")])


def test_report_names_how_each_row_is_reproduced():
    text = report.build_report()
    assert "`static_1frame` + `motion` (1 : 1)" in text            # Table 3, Disp. Map 112
    assert "w/o TSN: `static_notsn`" in text                         # Table 5, per column
    assert "not ours: FlowNet 2.0 two-stream" in text


def test_intervals_beside_ours_and_paper_numbers_inside_marked():
    tables = tables_mod.load_tables()
    paper = next(r for r in tables[6]["rows"] if r["id"] == "r4")["cells"]["Accuracy"]
    near = {"mean_class_accuracy": paper / 100 + 0.002,
            "ci": {"mean_class_accuracy": [paper / 100 - 0.004, paper / 100 + 0.008]}}
    text = report.build_report([("T6/r4", near, "near.json")])
    row = next(line for line in text.splitlines() if f"{paper:.1f}% ≈" in line)
    assert f"**{paper + 0.2:.1f}%** [{paper - 0.4:.1f}, {paper + 0.8:.1f}]" in row
    far = {"mean_class_accuracy": paper / 100 - 0.05,
           "ci": {"mean_class_accuracy": [paper / 100 - 0.06, paper / 100 - 0.04]}}
    assert "≈ |" not in report.build_report([("T6/r4", far, "far.json")])
    # Three splits: standard errors in quadrature, over 3, around the mean.
    splits = [("T7/ours_imagenet", {"mean_class_accuracy": a, "ci": {"mean_class_accuracy":
                                                                     [a - 0.0196, a + 0.0196]}},
               f"s{a}.json") for a in (0.90, 0.92, 0.94)]
    value, _, ci = report.collect(tables, splits)[(7, "ours_imagenet", "Accuracy")]
    half = 1.96 * 3 ** 0.5 / 3
    assert ci == pytest.approx([92.0 - half, 92.0 + half])
