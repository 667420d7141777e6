"""Reports from evaluator results: a fixed-width table, ``metrics.json`` and a bar chart.

``results`` is always ``{scorer name: result dict}`` as :class:`RankingEvaluator` returns them (its
``results`` attribute holds exactly this). Pointwise / rating results (no slices) show as slice "all".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from llmrec.utils.io import atomic_path, write_json

DEFAULT_METRICS = ("ndcg@10", "recall@10")
POINTWISE_METRICS = ("auc", "logloss")
DEFAULT_SLICES = ("all", "warm", "long_tail", "cold")


def _slice(result: dict, name: str) -> dict | None:
    slices = result.get("slices")
    if slices is None:
        return result if name == "all" else None
    return slices.get(name)


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def default_metrics(results: dict[str, dict]) -> tuple[str, ...]:
    """NDCG@10 / Recall@10 for ranking results, AUC / log loss for pointwise ones."""
    if results and all(r.get("mode") == "pointwise" for r in results.values()):
        return POINTWISE_METRICS
    return DEFAULT_METRICS


def results_table(results: dict[str, dict], metrics: Sequence[str] | None = None,
                  slices: Sequence[str] = DEFAULT_SLICES) -> str:
    """One row per (scorer, slice): mode, cases, targets and the chosen metrics, fixed width.

    A slice with no cases shows "-" for its metrics (never 0, which would read as a measured zero).
    """
    metrics = metrics or default_metrics(results)
    header = ["scorer", "slice", "mode", "cases", "targets", *metrics]
    rows: list[list[str]] = []
    for scorer, result in results.items():
        for name in slices:
            part = _slice(result, name)
            if part is None:
                continue
            counts = result.get("counts", {})
            cases = part.get("cases", counts.get("cases", counts.get("pairs")))
            targets = part.get("targets", "-")
            rows.append([scorer, name, str(result.get("mode", "-")), _fmt(cases), _fmt(targets),
                         *(_fmt(part.get(m)) for m in metrics)])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    # Text columns left-aligned, numbers right-aligned.
    left = {0, 1, 2}

    def line(cells: list[str]) -> str:
        padded = (c.ljust(w) if i in left else c.rjust(w)
                  for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
        return "  ".join(padded)

    title = _title(results)
    out = [title, line(header), line(["-" * w for w in widths])] if title else [line(header)]
    out += [line(r) for r in rows]
    return "\n".join(out)


def population_line(result: dict) -> str:
    """'132 cases: 132 of 943 users' or '200 of 9,000 pairs': how much of the data a number covers."""
    pop = result.get("population") or {}
    if not pop:
        return ""
    if "pairs" in pop:
        line = f"{pop['pairs']:,} of {pop.get('pairs_total', pop['pairs']):,} pairs"
        if pop.get("subsampled_pairs"):
            line += " (seeded subsample)"
    else:
        line = f"{pop.get('cases', 0):,} cases"
        if pop.get("subsampled_cases"):
            line += " (seeded subsample)"
    line += f", {pop.get('users_evaluated', 0):,} of {pop.get('users_in_dataset', 0):,} users"
    if pop.get("subsampled_dataset"):
        line += f"; the data set is a seeded {pop['users_in_dataset']:,} of {pop['users_in_source']:,} users"
    return line


def _title(results: dict[str, dict]) -> str:
    datasets = sorted({str(r.get("dataset")) for r in results.values() if r.get("dataset")})
    splits = sorted({f"{r['split']} split" for r in results.values() if r.get("split")})
    modes = sorted({str(r.get("mode")) for r in results.values() if r.get("mode")})
    parts = []
    if datasets:
        parts.append(", ".join(datasets))
    parts += splits
    if modes:
        parts.append("mode " + ", ".join(modes))
    parts += sorted({f"part {r['part']}" for r in results.values() if r.get("part")})
    parts += sorted({population_line(r) for r in results.values() if population_line(r)})
    return " | ".join(parts)


def write_results(results: dict[str, dict], out_dir: str | Path, metrics: Sequence[str] | None = None,
                  slices: Sequence[str] = DEFAULT_SLICES, title: str | None = None,
                  run_config: dict | None = None) -> list[Path]:
    """Write ``metrics.json`` and ``metrics.png`` into ``out_dir``, each atomically (and ``run.json``
    with the run's settings when ``run_config`` is given).

    Returns ``[json_path, png_path]``. The chart is titled ``title`` (e.g. "MovieLens 100K, temporal
    70/30") followed by the data set, mode, part and population the results carry.
    """
    out_dir = Path(out_dir)
    metrics = metrics or default_metrics(results)
    json_path = write_json(out_dir / "metrics.json", results)
    if run_config is not None:
        write_json(out_dir / "run.json", run_config)
    png_path = out_dir / "metrics.png"
    figure = _bar_chart(results, metrics, slices, title)
    with atomic_path(png_path) as tmp:
        figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    return [json_path, png_path]


def _bar_chart(results: dict[str, dict], metrics: Sequence[str], slices: Sequence[str], title: str | None):
    # The object API with an Agg canvas: no pyplot global state, no display needed, and the
    # caller's matplotlib backend is left alone.
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scorers = list(results)
    shown = [s for s in slices if any(_slice(r, s) is not None for r in results.values())]
    panel_width = min(10.0, max(4.0, 1.0 + 0.5 * len(shown) * max(1, len(scorers))))
    fig = Figure(figsize=(panel_width * len(metrics), 4.2))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    x = np.arange(len(shown))
    width = 0.8 / max(1, len(scorers))
    for ax, metric in zip(axes, metrics, strict=True):
        for j, scorer in enumerate(scorers):
            values = []
            for s in shown:
                part = _slice(results[scorer], s)
                v = None if part is None else part.get(metric)
                values.append(np.nan if v is None else float(v))
            ax.bar(x - 0.4 + width * (j + 0.5), values, width, label=scorer)
        first = results[scorers[0]] if scorers else {}
        labels = []
        for s in shown:
            part = _slice(first, s) or {}
            cases = part.get("cases")
            labels.append(f"{s}\n(n={cases})" if cases is not None else s)
        ax.set_xticks(x, labels)
        ax.set_title(metric)
        ax.set_ylim(bottom=0)
        ax.grid(axis="y", alpha=0.3)
    if scorers:
        axes[-1].legend(fontsize="small", loc="best")
    fig.suptitle(" | ".join(t for t in (title, _title(results)) if t) or "results")
    return fig
