"""The paper's Tables 1-9 as data (data/paper_tables.json): loading them and
resolving a reference to one of their cells (`T6/r4`, `T5/full/w/ TSN`)."""
import json
from pathlib import Path

from dcd.util.paths import REPO_ROOT

PAPER_TABLES = REPO_ROOT / "data" / "paper_tables.json"


class ReportError(ValueError):
    """A reference or summary that names no cell of the paper's tables."""


def load_tables(path=PAPER_TABLES):
    return {t["number"]: t for t in json.loads(Path(path).read_text())["tables"]}


def resolve_key(tables, key):
    """'T6/r4' or 'T5/full/w/ TSN' -> (table number, row id, column)."""
    if not key.startswith("T") or "/" not in key:
        raise ReportError(f"bad paper reference {key!r}: expected T<table>/<row id>[/<column>]")
    number, rest = key[1:].split("/", 1)
    try:
        table = tables[int(number)]
    except (ValueError, KeyError):
        raise ReportError(f"{key}: no Table {number} (tables: {sorted(tables)})") from None
    row_id, _, column = rest.partition("/")
    ids = [r["id"] for r in table["rows"]]
    if row_id not in ids:
        raise ReportError(f"{key}: Table {number} has no row {row_id!r} (rows: {', '.join(ids)})")
    values = [c for c, v in table["values"].items() if v["metric"] != "fps"]
    if not column:
        # One summary fills columns of distinct metrics (Kinetics' top-1 and top-5);
        # columns of the same metric (Table 5's w/o and w/ TSN) must be named.
        metrics = [table["values"][c]["metric"] for c in values]
        if len(set(metrics)) != len(metrics):
            raise ReportError(f"{key}: Table {number} has several value columns, name one: "
                              + ", ".join(f"T{number}/{row_id}/{c}" for c in values))
        column = values[0]
    if column not in table["values"]:
        raise ReportError(f"{key}: Table {number} has no value column {column!r}")
    return int(number), row_id, column
