"""A Markdown report: the paper's Tables 1-9 (data/paper_tables.json) with
our measured numbers beside them.

Measured accuracies come from tools/eval_scores.py --json summaries, each
tied to a paper row by a key T<table>/<row id>[/<column>] (the summary's own
`paper_ref`, or KEY=FILE on the command line); the column may be left out
when the row has one value column. Each value column is compared with the
metric the table names (mean class accuracy for UCF101, top-1/top-5 for
Kinetics). Table 9 is filled from tools/benchmark.py --json.
"""
from dcd.paper import table9
from dcd.paper.tables import PAPER_TABLES, ReportError, load_tables, resolve_key


def _mean_interval(cell):
    """95% interval (in %) of a cell's value, or None. One summary: its own
    bootstrap interval. A mean of k splits: the splits are independent test
    sets, so their standard errors (half-widths / 1.96) add in quadrature and
    the mean's is that / k, around the mean (a normal approximation)."""
    cis = [ci for _, _, ci in cell]
    if any(ci is None for ci in cis):
        return None
    if len(cis) == 1:
        return cis[0]
    mean = sum(v for v, _, _ in cell) / len(cell)
    half = sum(((hi - lo) / 2) ** 2 for lo, hi in cis) ** 0.5 / len(cis)
    return [mean - half, mean + half]


def collect(tables, summaries):
    """{(table, row id, column): (value in %, source, 95% interval in % or None)}
    from (key or None, summary, source); the interval is the summary's "ci"
    (tools/eval_scores.py). A table averaged over splits (Table 7) takes one
    summary per split for a key and reports their mean; elsewhere a key
    given twice is an error."""
    values = {}
    for key, summary, source in summaries:
        key = key or summary.get("paper_ref")
        if not key:
            raise ReportError(f"{source}: no paper reference (pass KEY=FILE or "
                              "eval_scores.py --paper_ref)")
        number, row, column = resolve_key(tables, key)
        table = tables[number]
        metric = table["values"][column]["metric"]
        if metric not in summary:
            raise ReportError(f"{source}: has no {metric!r} for {key}")
        columns = [column]
        # A Kinetics summary fills both of the row's columns.
        if metric in ("top1", "top5"):
            columns += [c for c, spec in table["values"].items()
                        if c != column and spec["metric"] in ("top1", "top5")]
        for c in columns:
            cell = values.setdefault((number, row, c), [])
            if cell and not str(table.get("split", "")).startswith("mean"):
                raise ReportError(f"{key} is given twice ({cell[0][1]} and {source}); Table "
                                  f"{number} is on one split")
            m = table["values"][c]["metric"]
            ci = summary.get("ci", {}).get(m)
            cell.append((100 * summary[m], source, [100 * x for x in ci] if ci else None))
    return {k: (sum(v for v, _, _ in cell) / len(cell), ", ".join(src for _, src, _ in cell) +
                (f" (mean of {len(cell)})" if len(cell) > 1 else ""), _mean_interval(cell))
            for k, cell in values.items()}


def inside(paper_value, interval):
    return (interval is not None and isinstance(paper_value, (int, float))
            and interval[0] <= paper_value <= interval[1])


def _fmt(value, unit=""):
    if value is None or value == "":
        return "" if value == "" else "-"
    if isinstance(value, dict):
        return f"({value['shared']:g})+{value['branch']:g}"
    if isinstance(value, float) or unit == "%":
        return f"{value:.1f}{unit}"
    return str(value)


def _md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return lines


def render_table(table, measured):
    n = table["number"]
    lines = [f"### Table {n}", "", f"*{table['caption']}*", ""]
    if table.get("layout_note"):
        lines += [f"(Paper layout: {table['layout_note']}.)", ""]
    values = table["values"]
    # Accuracy columns get an "ours" column; Table 3's FPS is compared in Table 9.
    measurable = [c for c, v in values.items() if v["metric"] != "fps"]
    from dcd.paper.recipes import describe
    header = []
    for c in table["columns"]:
        header.append(f"{c} (paper)" if c in values else c)
        if c in measurable:
            header.append(f"{c} (ours)")
    header.append("reproduced by")
    rows, sources = [], []
    for r in table["rows"]:
        cells = []
        for c in table["columns"]:
            unit = values.get(c, {}).get("unit", "")
            m = measured.get((n, r["id"], c)) if c in measurable else None
            paper = _fmt(r["cells"].get(c), unit)
            # A paper number inside our 95% interval: not distinguishable from ours.
            cells.append(paper + " ≈" if m and inside(r["cells"].get(c), m[2]) else paper)
            if c in measurable:
                band = f" [{m[2][0]:.1f}, {m[2][1]:.1f}]" if m and m[2] else ""
                cells.append(f"**{m[0]:.1f}%**{band}" if m else "")
                if m:
                    sources.append(f"{r['ref']}, {c}: {m[1]}")
        rec = r.get("reproduce", {})
        per_column = [f"{c}: {describe(rec[c])}" for c in measurable if c in rec]
        cells.append("; ".join(per_column) if per_column else describe(rec) if rec else "")
        rows.append(cells)
    lines += _md_table(header, rows)
    if sources:
        lines += [""] + [f"- ours, {s}" for s in sources]
    return lines


def build_report(summaries=(), bench=None, tables_path=PAPER_TABLES, title=None):
    """Markdown text. summaries: (key or None, summary dict, source name)."""
    tables = load_tables(tables_path)
    measured = collect(tables, summaries)
    lines = [f"# {title or 'DCD-Caffe: measured results beside the paper'}", "",
             "Paper numbers from `data/paper_tables.json`; ours in bold. Accuracies are mean "
             "class accuracy (UCF101, TSN's reported figure) or top-1/top-5 (Kinetics), "
             "from `tools/eval_scores.py`, with its 95% bootstrap interval over test videos "
             "in brackets (a mean over splits: the splits' intervals combined); a paper "
             "number marked ≈ lies inside our interval.", ""]
    for n in sorted(tables):
        lines += (table9.render_markdown(tables[n], bench, _md_table) if n == 9 else render_table(tables[n], measured))
        lines.append("")
    return "\n".join(lines)
