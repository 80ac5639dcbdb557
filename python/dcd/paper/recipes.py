"""How each row of the paper's Tables 1-9 is reproduced here: the nets to
train and score, and the fusion of their score files (data/paper_tables.json,
'reproduce'). Rendered into models/README.md by tools/make_models.py."""
import re

from dcd.paper.tables import load_tables

RECIPES_BEGIN = "<!-- recipes:begin (tools/make_models.py rewrites this section) -->"
RECIPES_END = "<!-- recipes:end -->"


def row_recipes(table):
    """[(row, column or None, recipe)] of a table; a per-column 'reproduce'
    (Table 5's w/o and w/ TSN) gives one entry per column, and each other
    reading of a row ('also', tagged by 'reading') an entry after its own."""
    out = []
    for row in table["rows"]:
        rec = row["reproduce"]
        if any(k in table["values"] for k in rec):
            entries = [(row, column, rec[column]) for column in rec]
        else:
            entries = [(row, None, rec)]
        for row_, column, recipe in entries:
            out.append((row_, column, recipe))
            out += [(row_, column, other) for other in recipe.get("also", ())]
    return out


def table_dataset(table, recipe):
    return recipe.get("dataset") or table.get("dataset", "ucf101")


def score_file(dataset, net, split=1, init=None):
    """Where the README's commands put a net's score file."""
    tag = f"{dataset}_{net}" + (f"_split{split}" if dataset == "ucf101" else "") + \
        (f"_from_{init}" if init else "")
    return f"results/{tag}.npz"


def paper_key(table, row, column):
    return f"T{table['number']}/{row['id']}" + (f"/{column}" if column else "")


def fusion_command(table, row, column, recipe, split=1):
    """tools/eval_scores.py over the recipe's score files, tied to the row."""
    dataset = table_dataset(table, recipe)
    files = " ".join(score_file(dataset, n, split, recipe.get("init")) for n in recipe["scores"])
    weights = recipe.get("weights") or [1] * len(recipe["scores"])
    key = paper_key(table, row, column)
    reading = f"_{recipe['reading']}" if recipe.get("reading") else ""
    out = "results/" + re.sub(r"[^A-Za-z0-9]+", "_", key).strip("_") + reading + \
        (f"_split{split}" if recipe.get("splits") else "") + ".json"
    parts = ["tools/eval_scores.py", files]
    if len(weights) > 1:
        parts.append("--score_weights " + " ".join(f"{w:g}" for w in weights))
    parts.append(f'--paper_ref "{key}"' if " " in key else f"--paper_ref {key}")
    parts.append(f"--json {out}")
    return " ".join(parts)


def describe(recipe):
    if "other" in recipe:
        return f"not ours: {recipe['other']}"
    if "benchmark" in recipe:
        return f"`{recipe['benchmark']}`" + (f"; {recipe['note']}" if recipe.get("note") else "")
    weights = recipe.get("weights") or [1] * len(recipe["scores"])
    nets = " + ".join(f"`{n}`" for n in recipe["scores"])
    text = nets if len(weights) == 1 else f"{nets} ({' : '.join(f'{w:g}' for w in weights)})"
    if recipe.get("splits"):
        text += ", splits " + ", ".join(map(str, recipe["splits"])) + " averaged"
    if recipe.get("init") == "kinetics":
        text += ", initialised from the Kinetics net"
    elif recipe.get("init") == "branches":
        text += (", initialised from the trained `static`, `motion` and `appchange` nets "
                 "(`tools/transfer_weights.py` with the three snapshots)")
    if recipe.get("reading"):
        text = f"other reading ({recipe['reading']}): {text}"
    if recipe.get("note"):
        text += f"; {recipe['note']}"
    return text


def _paper_value(table, row, column):
    values = [c for c, v in table["values"].items() if v["metric"] != "fps"]
    cols = [column] if column else values
    cells = []
    for c in cols:
        v = row["cells"].get(c)
        if isinstance(v, (int, float)):
            cells.append(f"{v:g}%" if table["values"][c].get("unit") == "%" else f"{v:g}")
    return " / ".join(cells) or "-"


def recipes_markdown(tables=None):
    tables = tables or load_tables()
    lines = [RECIPES_BEGIN, "",
             "Every row of the paper's Tables 1-9 (`data/paper_tables.json`). A net is trained "
             "with `caffe train --solver=models/<data set>/<net>_solver.prototxt`, scored with "
             "`tools/eval_net.py` into `results/<data set>_<net>[_split<k>].npz` (the command "
             "under \"Scoring\" above), and a row is the fusion of its score files below "
             "(`tools/report.py results/*.json` puts them beside the paper's numbers). Splits "
             "2 and 3: `tools/make_models.py --split k`, the same commands with `split<k>`.", ""]
    for number in sorted(tables):
        table = tables[number]
        lines += [f"**Table {number}.** {table['caption']}", "",
                  "| row | paper | reproduced by | command |", "| --- | ---: | --- | --- |"]
        for row, column, recipe in row_recipes(table):
            label = row["label"] + (f", {column}" if column else "")
            if "scores" in recipe:
                cmd = f"`{fusion_command(table, row, column, recipe)}`"
            elif "benchmark" in recipe:
                cmd = f"`{recipe.get('command', 'tools/benchmark.py --json results/benchmark.json')}`"
            else:
                cmd = "-"
            lines.append(f"| {label} | {_paper_value(table, row, column)} | {describe(recipe)} "
                         f"| {cmd} |")
        lines.append("")
    lines.append(RECIPES_END)
    return "\n".join(lines)


def rewrite_recipes(text, section):
    from dcd.util.markdown import rewrite_section
    return rewrite_section(text, RECIPES_BEGIN, RECIPES_END, section)


def recipe_nets(tables=None):
    """{(dataset, net)} every recipe names."""
    tables = tables or load_tables()
    nets = set()
    for table in tables.values():
        for _, _, recipe in row_recipes(table):
            for name in recipe.get("scores", ()):
                nets.add((table_dataset(table, recipe), name))
    return nets
