"""Table 9 (runtime) in one layout: a column per branch, the paper's rows
(its TITAN X) and then ours per batch size, ms/frame and FPS; numbers in
brackets are the displacement map, shared by motion and appearance change.
As aligned text (tools/benchmark.py) or as Markdown (tools/report.py)."""
from dcd.paper.tables import load_tables
from dcd.perf.nets import column


def _paper_cell(cell):
    if cell is None:
        return "-"
    if isinstance(cell, dict):
        return f"({cell['shared']:g})+{cell['branch']:g}"
    return f"{cell:g}"


def _ours_ms(result):
    if "disp_ms_per_frame" in result:
        return f"({result['disp_ms_per_frame']:.3g})+{result['branch_ms_per_frame']:.3g}"
    return f"{result['ms_per_frame']:.3g}"


def grid(bench, table=None, mark=str, missing=""):
    """(header, rows) of Table 9 with `bench` (tools/benchmark.py's
    measurements, or None): the paper's columns, then any other net measured;
    our cells pass through `mark` (bold in Markdown), absent ones are
    `missing`."""
    table = table or load_tables()[9]
    nets = (bench or {}).get("nets", {})
    by_col = {column(name): entry for name, entry in nets.items()}
    cols = [c for c in table["columns"] if c != "Branch"]
    cols += [c for c in by_col if c not in cols]
    rows = [[f"{r['label']} (paper, {table['device']})"] + [_paper_cell(r["cells"].get(c))
                                                            for c in cols]
            for r in table["rows"]]
    for b in (bench or {}).get("batch_sizes", []):
        ms, fps = [f"ours ms/frame (batch {b})"], [f"ours FPS (batch {b})"]
        for c in cols:
            result = by_col.get(c, {}).get("results", {}).get(str(b))
            ms.append(mark(_ours_ms(result)) if result else missing)
            fps.append(mark(f"{result['fps']:.3g}") if result else missing)
        rows += [ms, fps]
    return ["Branch"] + cols, rows


def _notes(bench):
    return [f"note: {name}: {entry['error']}" for name, entry in bench["nets"].items()
            if entry.get("error")]


def format_text(bench, table=None):
    """Aligned columns for the terminal, with the device and build on top."""
    header, rows = grid(bench, table, missing="n/a")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    build = ""
    if bench.get("mode") == "gpu":
        build = ", cuDNN " + ("on" if bench.get("cudnn_used") else "off")
    lines = [f"Table 9 (runtime); ours on {bench['device']}{build}; numbers in brackets: the "
             "displacement map (shared by motion and appearance change)", line(header)]
    return "\n".join(lines + [line(r) for r in rows] + _notes(bench))


def render_markdown(table, bench, md_table):
    """The report's section: caption, then the grid through `md_table`."""
    lines = [f"### Table {table['number']}", "", f"*{table['caption']}*", ""]
    if bench:
        lines += [f"Ours on {bench['device']}.", ""]
    header, rows = grid(bench, table, mark=lambda cell: f"**{cell}**")
    lines += md_table(header, rows)
    if not bench:
        lines += ["", "(no benchmark given: run tools/benchmark.py --json FILE)"]
    return lines
