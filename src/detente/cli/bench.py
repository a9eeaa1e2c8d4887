"""``detente bench``: the LLM loop's speed on this machine (rollout, history, update, ceiling) as tables and
JSON. What each figure means: :mod:`detente.bench`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.table import Table

from detente.cli.common import UsageError, console, progress, progress_callback


def add_parser(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="measure the LLM loop here: rollout, history, update, ceiling")
    bench.add_argument("--model", default="smollm2", help="model name or folder (default smollm2)")
    bench.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    bench.add_argument("--quick", action="store_true", help="a smaller run: 1, 8 and 32 games, rounds 1 "
                       "and 20, 16-token messages, one repetition (a few minutes on 2 CPU cores)")
    bench.add_argument("--naive-games", type=int, metavar="N", help="the naive baseline plays at most the "
                       "first N games of each rollout figure (default 1 with --quick, else 8)")
    bench.add_argument("--threads", type=int, metavar="N", help="torch threads (default torch's); 1 on a "
                       "machine shared with other work")
    bench.add_argument("--seed", type=int, default=0, help="first game seed (default 0)")
    bench.add_argument("--json", metavar="FILE", help="also write every figure to FILE as JSON")
    bench.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> None:
    from detente.atomic import write_atomic
    from detente.bench import BenchOptions, run_bench

    for option, value in (("--naive-games", args.naive_games), ("--threads", args.threads)):
        if value is not None and value < 1:
            raise UsageError(f"{option} must be >= 1, got {value}")
    options = BenchOptions(model=args.model, device=args.device, quick=args.quick,
                           naive_games=args.naive_games, threads=args.threads, seed=args.seed)
    with progress() as bar:
        result = run_bench(options, progress_callback(bar, "bench")).to_json()
    print_tables(result)
    if args.json:
        write_atomic(Path(args.json), json.dumps(result, indent=2) + "\n")
        console.print(f"wrote {args.json}", highlight=False)


def print_tables(result: dict[str, Any]) -> None:
    """The machine line, then one table per section."""
    m = result["machine"]
    console.print(f"[bold]{m['model']}[/] (P = {m['parameters'] / 1e6:.1f}M outside the embeddings) on "
                  f"{m['gpu'] or m['cpu']}, {m['device']} {m['dtype']}, {m['cores']} cores, "
                  f"{m['torch_threads']} torch threads; torch {m['torch']}, transformers {m['transformers']}",
                  highlight=False, soft_wrap=True)
    console.print(_table("rollout: self-play, decisions per second", [
        ("game", "game"), ("games", "concurrent_games"), ("detente dec/s", "decisions_per_s"),
        ("naive dec/s", "naive_decisions_per_s"), ("naive games", "naive_games"),
        ("detente tokens/s", "tokens_per_s")], result["rollout"], speedup=("decisions_per_s",
                                                                            "naive_decisions_per_s")))
    console.print(_table("history: seconds per round of a 20-round game", [
        ("game", "game"), ("round", "round"), ("detente s", "seconds"), ("naive s", "naive_seconds")],
        result["history"], speedup=("naive_seconds", "seconds")))
    u, c = result["update"], result["ceiling"]
    console.print(_table("update: trained tokens per second (first iteration of cpu_ipd_adalign)", [
        ("shared prefix", "tokens_per_s"), ("unshared", "unshared_tokens_per_s"),
        ("bare peft (unique tokens)", "bare_tokens_per_s"), ("peak MiB", "peak_mib")], [u]))
    console.print(_table("ceiling: useful FLOP/s over the matmul rate", [
        ("matmul GFLOP/s", "matmul_gflops"), ("update", "fraction"), ("best rollout", "rollout_fraction")],
        [c]))


def _table(title: str, columns: list[tuple[str, str]], rows: list[dict[str, Any]],
           speedup: tuple[str, str] | None = None) -> Table:
    """A table of ``rows`` (dicts) with ``(header, key)`` columns, and a ratio column ``a / b``."""
    table = Table(title=title)
    for header, _ in columns:
        table.add_column(header, justify="left" if header == "game" else "right")
    if speedup:
        table.add_column("speed-up", justify="right", style="bold")
    for row in rows:
        cells = [_cell(row[key]) for _, key in columns]
        if speedup:
            cells.append(f"{row[speedup[0]] / row[speedup[1]]:.1f}x")
        table.add_row(*cells)
    return table


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1 else f"{value:,.1f}"
    return str(value)
