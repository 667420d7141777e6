"""Benchmarks write their numbers through ``record``; RESULTS.md is rebuilt from those records.

Each benchmark script stores one JSON record under ``benchmarks/results/`` (its measured values,
a markdown table made from them, the command that produced it, and the machine). ``RESULTS.md`` is
regenerated from all records, so no number in it is ever typed by hand.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
RESULTS_MD = HERE / "RESULTS.md"
sys.path.insert(0, str(HERE.parent))

from _plots import plot  # noqa: E402

from llmrec.utils.io import atomic_write, write_json  # noqa: E402


def machine() -> str:
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only"
    return (f"{platform.machine()}, {os.cpu_count()} cores, {device}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads")


def markdown_table(rows: list[dict], columns: list[str] | None = None, floatfmt: str = ".4f") -> str:
    """A plain markdown table from a list of dicts (values formatted, missing cells blank)."""
    if not rows:
        return "_(no rows)_"
    columns = columns or list(rows[0])
    def fmt(v):
        if isinstance(v, float):
            return format(v, floatfmt)
        return "" if v is None else str(v)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def record(name: str, title: str, command: str, markdown: str, data: dict, notes: str = "") -> Path:
    """Store one benchmark's record and rebuild RESULTS.md."""
    path = write_json(RESULTS_DIR / f"{name}.json", {
        "name": name,
        "title": title,
        "command": command,
        "measured_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "markdown": markdown,
        "notes": notes,
        "data": data,
    })
    plot(name, data, RESULTS_DIR / f"{name}.png")
    rebuild()
    return path


def _users(info: dict, settings: dict, name: str) -> str:
    """One data set's population from a ``sizes`` entry: 'N of M users (seeded subsample)'."""
    users = info.get("users")
    if users is None:
        return ""
    if info.get("users_total") is not None:
        text = f"{users:,} of {info['users_total']:,} users"
        return text + " (seeded subsample)" if info.get("subsampled", users != info["users_total"]) else text
    # Older records did not store the total; say what the settings tell, never a guessed total.
    flag = {"amazon-games": "games_users", "amazon-scientific": "scientific_users"}.get(name)
    if flag and settings.get(flag) == users:  # the flag asked for exactly this many: a subsample
        option = "--" + flag.replace("_", "-")
        return f"{users:,} users (a seeded subsample, {option} {users:,}; the total was not recorded)"
    return f"{users:,} users"


def population(data: dict) -> str:
    """How many users a record's numbers cover, out of the total, where the record says so."""
    parts: list[str] = []
    sizes = data.get("sizes") if isinstance(data, dict) else None
    if isinstance(sizes, dict):
        settings = data.get("settings") or {}
        parts += [f"{name}: {_users(info, settings, name)}" for name, info in sizes.items()
                  if isinstance(info, dict) and _users(info, settings, name)]
    results = data.get("results") if isinstance(data, dict) else None
    if isinstance(results, dict):
        from llmrec.eval.report import population_line

        lines = sorted({population_line(r) for r in results.values() if isinstance(r, dict) and r.get("population")})
        parts += [line for line in lines if line]
    setup = data.get("setup") if isinstance(data, dict) else None
    if isinstance(setup, dict) and setup.get("users_total"):
        parts.append(f"{setup['dataset']}: each row the first N of one seeded order of its "
                     f"{setup['users_total']:,} users (N per row)")
    return "; ".join(parts)


def rebuild() -> None:
    records = [json.loads(p.read_text()) for p in sorted(RESULTS_DIR.glob("*.json"))]
    parts = ["# llmrec benchmark results", "",
             "Generated (charts too) by `python benchmarks/_record.py` from the records in `benchmarks/results/`; "
             "each section names the command that measured it. Do not edit by hand.", ""]
    for rec in records:
        parts += [f"## {rec['title']}", "",
                  f"Measured {rec['measured_at']} on {rec['machine']} with:", "",
                  f"    {rec['command']}", ""]
        covered = population(rec.get("data") or {})
        if covered and "Population:" not in rec["markdown"] + (rec.get("notes") or ""):
            parts += [f"Population: {covered}.", ""]
        parts += [rec["markdown"], ""]
        if (RESULTS_DIR / f"{rec['name']}.png").exists():
            parts += [f"![{rec['title']}](results/{rec['name']}.png)", ""]
        if rec.get("notes"):
            parts += [rec["notes"], ""]
    with atomic_write(RESULTS_MD) as fh:
        fh.write("\n".join(parts))


if __name__ == "__main__":
    for record_path in sorted(RESULTS_DIR.glob("*.json")):  # redraw charts, e.g. after a plotting change
        stored = json.loads(record_path.read_text())
        plot(stored["name"], stored["data"], record_path.with_suffix(".png"))
    rebuild()
