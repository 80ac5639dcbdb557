#!/usr/bin/env python3
"""Markdown report: the paper's Tables 1-9 (data/paper_tables.json) with our
measurements beside them: accuracy summaries from tools/eval_scores.py --json
(tied to paper rows by their paper_ref, or KEY=FILE, KEY like T6/r4 or
"T5/full/w/ TSN") and runtime from tools/benchmark.py --json (Table 9)."""
import argparse
import json
import sys
from pathlib import Path

from dcd.util.cli import tool_main


@tool_main("report")
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="*", help="eval_scores JSON files, or KEY=FILE")
    p.add_argument("--benchmark", help="tools/benchmark.py --json output")
    p.add_argument("--tables", help="paper tables (default: data/paper_tables.json)")
    p.add_argument("--title")
    p.add_argument("--out", help="write the report here (default: stdout)")
    args = p.parse_args(argv)

    from dcd.paper.report import build_report
    from dcd.paper.tables import PAPER_TABLES, ReportError
    summaries = []
    try:
        for item in args.results:
            key, sep, path = item.rpartition("=")
            path = path if sep else item
            summaries.append((key or None, json.loads(Path(path).read_text()), path))
        bench = json.loads(Path(args.benchmark).read_text()) if args.benchmark else None
        text = build_report(summaries, bench, args.tables or PAPER_TABLES, args.title)
    except (ReportError, OSError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
