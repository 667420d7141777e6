"""Quickstart metrics: embedding ranker vs popularity on MovieLens 100K (temporal 70/30, full ranking).

    python benchmarks/bench_quickstart.py [--data-dir DIR]

Writes benchmarks/results/quickstart.json and rebuilds RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile

from _record import markdown_table, record

from llmrec.quickstart import QuickstartConfig, run_quickstart

SLICES = ("all", "warm", "long_tail", "cold")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as out:
        run = run_quickstart(QuickstartConfig(data_dir=args.data_dir, out_dir=out, show_progress=False))
    rows = []
    for scorer, result in run["results"].items():
        for name in SLICES:
            s = result["slices"].get(name)
            if not s:
                continue
            rows.append({"scorer": scorer, "slice": name, "cases": s.get("cases"), "NDCG@10": s["ndcg@10"],
                         "Recall@10": s["recall@10"], "HR@10": s["hr@10"]})
    mode = next(iter(run["results"].values()))["mode"]
    split = run["split"]
    notes = (f"Metric mode: **{mode}** ranking over all 1,682 movies, history items excluded. Split: "
             f"{split['train']:,} train / {split['test']:,} test events; {split['cold_test_items']} cold-start "
             "movies. Cases are test users with at least one training event.")
    record("quickstart", "Quickstart: MovieLens 100K, temporal 70/30, full ranking",
           "python benchmarks/bench_quickstart.py --data-dir ../shared/data",
           markdown_table(rows), {"split": split, "results": run["results"]}, notes=notes)


if __name__ == "__main__":
    sys.exit(main())
