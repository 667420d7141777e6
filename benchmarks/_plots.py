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


def _tallrec_evidence(data: dict):
    fig, axes = _figure(6.5, 4.2)
    ax = axes[0]
    runs = data["tuned_runs"]
    shots = sorted({r["shots"] for r in runs})
    for key, label, color in (("test_auc", "LoRA-tuned, evidence in the prompt: test", "#1f77b4"),
                              ("train_auc", "same adapters: their training examples", "#ff7f0e")):
        points = [(k, np.mean([r[key] for r in runs if r["shots"] == k and r.get(key) is not None]))
                  for k in shots if any(r.get(key) is not None for r in runs if r["shots"] == k)]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", color=color, label=label)
    if shots:
        goals = [(k, v) for k, v in sorted((int(k), v) for k, v in data.get("goals", {}).items()) if k in shots]
        if goals:
            ax.plot(*zip(*goals, strict=True), ls="none", marker="_", ms=16, color="red", label="issue #16 goal")
    styles = {"item-prior": ("green", "--"), "bias": ("purple", "-."), "popularity": ("brown", ":")}
    for name, result in data["results"].items():
        if name in styles:
            ax.axhline(result["auc"], color=styles[name][0], ls=styles[name][1], label=f"{name} (no LLM)")
        elif "zero-shot" in name:
            ax.axhline(result["auc"], color="gray", ls=":", label=name)
    ax.axhline(0.5, color="black", lw=0.5)
    if shots:
        ax.set_xscale("log", base=2)
        ax.set_xticks(shots, [str(k) for k in shots])
    ax.set_xlabel("training examples (shots)")
    ax.set_ylabel("AUC")
    ax.legend(fontsize="x-small")
    ax.grid(alpha=0.3)
    fig.suptitle("TALLRec with collaborative evidence (MovieLens 100K, temporal split)")
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


def _dien(data: dict):
    """AUC (mean ± std over seeds) of each method: baselines grey, DIEN variants blue (aux loss darker)."""
    rows = data["rows"]
    fig, axes = _figure(7.5, 0.45 * len(rows) + 1.6)
    ax = axes[0]
    y = np.arange(len(rows))
    colors = ["#888888" if not r["method"].startswith("DIEN") else ("#08519c" if "aux" in r["method"] else "#6baed6")
              for r in rows]
    ax.barh(y, [r["AUC"] for r in rows], xerr=[r["AUC std"] for r in rows], color=colors, capsize=3)
    ax.set_yticks(y, [f"{r['method']} ({r['seeds']} seed{'s' if r['seeds'] > 1 else ''})" for r in rows],
                  fontsize="x-small")
    ax.invert_yaxis()
    low = min(r["AUC"] - r["AUC std"] for r in rows)
    ax.set_xlim(max(0.5, low - 0.02), min(1.0, max(r["AUC"] + r["AUC std"] for r in rows) + 0.01))
    ax.set_xlabel("test AUC (held-out click vs 1 sampled non-click)")
    ax.grid(axis="x", alpha=0.3)
    users = data.get("population", {}).get("users_evaluated")
    source = data.get("settings", {}).get("dataset", "ml-100k")  # the first record predates the option
    ax.set_title(f"DIEN ablation, {source}" + (f", {users:,} users" if users else ""), fontsize=9)
    return fig


def _two_tower(data: dict):
    """Left: test top-100 accuracy against RMSE of each model, the goal region shaded. Right (records
    with tuning runs): validation RMSE per epoch of each candidate setting of the joint model."""
    tuning = [h for h in data.get("tuning", []) if h["weighting"] == "joint"]
    fig, axes = _figure(11 if tuning else 5.5, 4.2, 2 if tuning else 1)
    ax = axes[0]
    for r in data["rows"]:
        if r["RMSE"] is None:
            ax.axvline(r["top-100"], color="#888888", ls="--", lw=1, label=f"{r['method']} (no rating)")
            continue
        ax.scatter(r["top-100"], r["RMSE"], s=40, label=r["method"])
    rmses = [r["RMSE"] for r in data["rows"] if r["RMSE"] is not None]
    bottom, right = min(rmses + [0.9]) - 0.02, max(r["top-100"] for r in data["rows"]) + 0.05
    ax.set_ylim(bottom, min(max(rmses) + 0.05, 1.3))
    ax.set_xlim(0, right)
    ax.fill_between([0.36, right], bottom, 0.90, color="green", alpha=0.08,
                    label="goal: top-100 >= 0.36 and RMSE <= 0.90")
    ax.set_xlabel("test top-100 accuracy (all 1,682 items)")
    ax.set_ylabel("test RMSE")
    ax.set_title("MovieLens 100K, TFRS protocol (80/20)", fontsize=9)
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)
    if tuning:
        ax = axes[1]
        for preset in dict.fromkeys(h["preset"] for h in tuning):
            mine = [h for h in tuning if h["preset"] == preset]
            ax.plot([h["epoch"] for h in mine], [h["rmse"] for h in mine], marker="o", label=preset)
        ax.axhline(0.90, color="green", lw=1, ls=":")
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation RMSE (10% of train)")
        ax.set_title("joint model: candidate settings on validation", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return fig


def _ltr(data: dict):
    """NDCG@10 of every row (LLM rows blue, the hybrids orange) and the hybrid's feature importances."""
    fig, axes = _figure(11, 4.8, 2)
    names = list(data["results"])
    values = [data["results"][n]["ndcg@10"] for n in names]
    llm = set(data.get("features", [])) & {"llmrank", "llamarec"}
    colors = ["#ff7f0e" if n.startswith("ltr") else "#1f77b4" if n.split("[")[0] in llm else "#888888" for n in names]
    ax = axes[0]
    ax.barh(np.arange(len(names)), values, color=colors)
    ax.set_yticks(np.arange(len(names)), names, fontsize="x-small")
    ax.invert_yaxis()
    mode = data["results"][names[0]]["mode"] if names else ""
    ax.set_xlabel(f"NDCG@10 ({mode}, {data['results'][names[0]]['population']['cases']} cases)" if names else "")
    ax.grid(axis="x", alpha=0.3)
    imp = sorted(data.get("importances", {}).items(), key=lambda kv: -kv[1])
    ax = axes[1]
    ax.barh(np.arange(len(imp)), [v for _, v in imp], color=["#1f77b4" if k in llm else "#888888" for k, _ in imp])
    ax.set_yticks(np.arange(len(imp)), [k for k, _ in imp], fontsize="small")
    ax.invert_yaxis()
    ax.set_xlabel("share of LambdaMART split gain")
    ax.grid(axis="x", alpha=0.3)
    return fig


PLOTTERS: dict[str, Callable[[dict], Figure]] = {"llmrank_games": _llmrank, "tallrec": _tallrec,
                                                 "coldstart": _coldstart, "p5": _p5, "ptum": _ptum,
                                                 "ptum_valid": _ptum, "ptum_scientific": _ptum_scientific,
                                                 "dien_ablation": _dien, "dien_ablation_amazon_scientific": _dien,
                                                 "dien_ablation_amazon_games": _dien, "two_tower_tfrs": _two_tower,
                                                 "ltr_games": _ltr, "ltr_scientific": _ltr,
                                                 "tallrec_evidence": _tallrec_evidence}


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
