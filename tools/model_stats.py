#!/usr/bin/env python3
"""Parameters and multiply-adds of every DCD net (from blob shapes, no
forward pass), checked against BN-Inception's published size and written
into models/README.md's marked section."""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
from dcd.util.cli import tool_main  # noqa: E402
REPO = Path(__file__).resolve().parents[1]


@tool_main("model_stats")
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readme", type=Path, default=REPO / "models" / "README.md",
                        help="file whose marked section is rewritten (default: %(default)s)")
    parser.add_argument("--print-only", action="store_true", help="print, do not write")
    args = parser.parse_args(argv)
    from dcd.nets.stats import all_stats, rewrite_section, stats_markdown, trunk_stats
    section = stats_markdown(trunk_stats(), all_stats(progress=True))
    if args.print_only:
        print(section)
        return 0
    text = args.readme.read_text() if args.readme.exists() else ""
    args.readme.write_text(rewrite_section(text, section))
    print(f"updated {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
