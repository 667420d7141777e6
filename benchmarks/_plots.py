"""Charts for the benchmark records whose numbers read better as a picture.

``plot(name, data, path)`` draws the chart of one record (``benchmarks/results/<name>.json``'s
``data``) into ``path`` and returns True, or returns False when that record has no chart. Run
``python benchmarks/_plots.py`` to redraw every chart from the stored records.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from llmrec.utils.io import atomic_write

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _figure(width: float, height: float, panels: int = 1):
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)  # object API: no pyplot state, no display
    return fig, fig.subplots(1, panels, squeeze=False)[0]


def _llmrank(data: dict):
    rows = [r for r in data["baselines"] + data["llm"] if "skipped" not in r]
    panels = 2 if data.get("position_bias") else 1
    fig, axes = _figure(6 + 4 * panels, 4.8, panels)
    labels = [r["scorer"] if r.get("mode", "-") == "-" else f"{r['scorer']}\n{r['mode']}" for r in rows]
    values = [r["ndcg@10"] for r in rows]
    colors = ["#888888" if r.get("mode", "-") == "-" else "#1f77b4" for r in rows]
    ax = axes[0]
    ax.barh(np.arange(len(rows)), values, color=colors)
    def users(r: dict) -> str:  # "n=200 of 50,546" where the record says the total
        return f"n={r['users']:,}" + (f" of {r['users_total']:,}" if r.get("users_total") else "")

    ax.set_yticks(np.arange(len(rows)), [f"{lab} ({users(r)})" for lab, r in zip(labels, rows, strict=True)],
                  fontsize="x-small")
    ax.invert_yaxis()
    random_ndcg10 = sum(1 / np.log2(2 + k) for k in range(10)) / 20  # target equally likely at each of 20 ranks
    ax.axvline(random_ndcg10, color="red", ls="--", lw=1,
               label="random order (expected NDCG@10)")
    label = rows[0].get("candidates", "sampled-19") if rows else "sampled-19"
    ax.set_xlabel(f"NDCG@10 ({label}: ground truth + 19 random candidates)")
    ax.legend(fontsize="x-small", loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    if panels == 2:
        pb = data["position_bias"]
        positions = list(pb["positions"])
        ax = axes[1]
        for k in (1, 10):
            ax.plot([int(p) for p in positions], [pb["positions"][p][f"ndcg@{k}"] for p in positions],
                    marker="o", label=f"NDCG@{k}")
        ax.set_xlabel("position of the ground truth in the prompt")
        ax.set_title(f"position bias: {pb['scorer']} ({pb['cases']} users)", fontsize="small")
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    fig.suptitle("LLMRank on Amazon Games validation users")
    return fig


def _tallrec(data: dict):
    fig, axes = _figure(6.5, 4.2)
    ax = axes[0]
    shots = sorted({r["shots"] for r in data["runs"]})
    for k in shots:
        aucs = [r["auc"] for r in data["runs"] if r["shots"] == k]
        ax.scatter([k] * len(aucs), aucs, color="#1f77b4", alpha=0.6, s=18)
    means = [np.mean([r["auc"] for r in data["runs"] if r["shots"] == k]) for k in shots]
    ax.plot(shots, means, marker="o", color="#1f77b4", label="LoRA-tuned (each seed, and mean)")
    ax.axhline(data["zero_shot"]["auc"], color="gray", ls=":", label="zero-shot")
    ax.axhline(data["item_prior"]["auc"], color="green", ls="--", label="item prior (no LLM)")
    ax.axhline(0.5, color="black", lw=0.5)
    ax.set_xscale("log", base=2)
    ax.set_xticks(shots, [str(k) for k in shots])
    ax.set_xlabel("training examples (shots)")
    ax.set_ylabel(f"AUC on {data['eval_n']} TALLRec valid.json examples")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.suptitle("TALLRec few-shot AUC (MovieLens)")
    return fig


def _coldstart(data: dict):
    """Per data set: NDCG@10 over all test targets and over cold-start targets, per scorer."""
    datasets = data["datasets"]
    fig, axes = _figure(6.5 * len(datasets), 4.2, len(datasets))
    for ax, (name, ds) in zip(axes, datasets.items()):
        results = dict(ds["baselines"])
        for model, entry in ds["llm"].items():
            results.update({f"{scorer} ({model})": r for scorer, r in entry["results"].items()})
        names = list(results)
        x = np.arange(len(names))
        for offset, slice_name in ((-0.2, "all"), (0.2, "cold")):
            values = [results[n]["slices"][slice_name]["ndcg@10"] or 0.0 for n in names]
            ax.bar(x + offset, values, width=0.4, label=f"{slice_name} targets")
        ax.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("NDCG@10 (full ranking)")
        ax.set_title(f"{name}, temporal 70/30", fontsize=9)
        ax.legend(fontsize=7)
    return fig


def _p5(data: dict):
    """Per data set: HR@10 and NDCG@10 (all targets) of the baselines and each P5 scheme (likelihood
    ranking, trained prompt); the leaky scheme hatched."""
    rows = [r for r in data["rows"] if r["slice"] == "all" and r["variant"] in ("-", "likelihood, trained prompt")]
    datasets = list(dict.fromkeys(r["data set"] for r in rows))
    fig, axes = _figure(6.5 * len(datasets), 4.2, len(datasets))
    for ax, name in zip(axes, datasets):
        mine = [r for r in rows if r["data set"] == name]
        x = np.arange(len(mine))
        for offset, metric in ((-0.2, "hr@10"), (0.2, "ndcg@10")):
            bars = ax.bar(x + offset, [r[metric] or 0.0 for r in mine], width=0.4, label=metric.upper())
            for bar, r in zip(bars, mine):
                if "LEAKY" in r["method"]:
                    bar.set_hatch("//")
        ax.set_xticks(x, [r["method"] for r in mine], rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("full ranking, all targets")
        ax.set_title(f"{name}: P5 item indexing vs baselines (hatched: LEAKY)", fontsize=9)
        ax.legend(fontsize=7)
    return fig


def _ptum(data: dict):
    """Learning curves: per demographic target, AUC (mean ± std over seeds; older records: accuracy
    with the majority-class floor) against the share of labelled users, one line per encoder."""
    runs = data["runs"]
    metric = "auc" if all("auc" in r for r in runs) else "accuracy"
    targets = list(dict.fromkeys(r["target"] for r in runs))
    fig, axes = _figure(5.0 * len(targets), 3.8, len(targets))
    held_out = runs[0].get("holdout", "test")
    for ax, target in zip(axes, targets):
        mine = [r for r in runs if r["target"] == target]
        fractions = sorted({r["label_fraction"] for r in mine})
        for variant in dict.fromkeys(r["variant"] for r in mine):
            values = [[r[metric] for r in mine if r["variant"] == variant and r["label_fraction"] == f]
                      for f in fractions]
            ax.errorbar(fractions, [np.mean(v) for v in values], yerr=[np.std(v) for v in values], marker="o",
                        capsize=3, label=variant)
        if metric == "auc":
            ax.axhline(0.5, color="k", linestyle="--", linewidth=1, label="chance")
        else:
            floor = [np.mean([r["majority_accuracy"] for r in mine if r["label_fraction"] == f]) for f in fractions]
            ax.plot(fractions, floor, "k--", linewidth=1, label="majority class")
        ax.set_xscale("log")
        ax.set_xlabel("share of training users labelled")
        ax.set_ylabel(f"{held_out} {'AUC' if metric == 'auc' else metric}")
        ax.set_title(f"PTUM, MovieLens 100K {target}", fontsize=9)
        ax.legend(fontsize=7)
    return fig


def _ptum_scientific(data: dict):
    """Next-item NDCG@10 (mean ± std over seeds) against the share of users fine-tuned on, one line
    per encoder, with the baselines trained on every user as horizontal lines."""
    fig, axes = _figure(5.5, 3.8, 1)
    ax = axes[0]
    runs = data["runs"]
    fractions = sorted({r["user_fraction"] for r in runs})
    for variant in dict.fromkeys(r["variant"] for r in runs):
        values = [[r["ndcg@10"] for r in runs if r["variant"] == variant and r["user_fraction"] == f]
                  for f in fractions]
        ax.errorbar(fractions, [np.mean(v) for v in values], yerr=[np.std(v) for v in values], marker="o",
                    capsize=3, label=variant)
    for i, row in enumerate(data["baselines"]):
        ax.axhline(row["NDCG@10"], color=f"C{7 + i}", linestyle="--", linewidth=1, label=row["method"])
    ax.set_xscale("log")
    ax.set_xlabel("share of users fine-tuned on (next item)")
    ax.set_ylabel("NDCG@10 (full ranking)")
    ax.set_title("PTUM, Amazon Scientific next item", fontsize=9)
    ax.legend(fontsize=7)
    return fig


PLOTTERS: dict[str, Callable[[dict], Figure]] = {"llmrank_games": _llmrank, "tallrec": _tallrec,
                                                 "coldstart": _coldstart, "p5": _p5, "ptum": _ptum,
                                                 "ptum_valid": _ptum, "ptum_scientific": _ptum_scientific}


def plot(name: str, data: dict, path: Path) -> bool:
    if name not in PLOTTERS:
        return False
    fig = PLOTTERS[name](data)
    with atomic_write(path, mode="wb") as fh:
        fig.savefig(fh, format="png", dpi=110, bbox_inches="tight")
    return True


if __name__ == "__main__":
    for record_path in sorted(RESULTS_DIR.glob("*.json")):
        rec = json.loads(record_path.read_text())
        if plot(rec["name"], rec["data"], record_path.with_suffix(".png")):
            print("drew", record_path.with_suffix(".png"))
