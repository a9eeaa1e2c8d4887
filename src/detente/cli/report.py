"""``detente report DIR``: a self-contained report.html for a run or eval folder."""

from __future__ import annotations

import argparse

from detente.cli.common import console


def add_parser(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser("report", help="write a self-contained report.html for a run or eval folder")
    report.add_argument("dir", metavar="DIR", help="run folder (metrics.jsonl, matrix.json, transcripts/) "
                        "or eval folder (matrix.json)")
    report.add_argument("--out", metavar="FILE", help="where to write the page (default DIR/report.html)")
    report.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> None:
    from detente.report import write_report

    path = write_report(args.dir, args.out)
    console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)", markup=False, highlight=False)
