"""The registry is the method folders, and the arrows point one way (design.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmrec.data.schema import ITEM, RATING, TIME, USER, Dataset
from llmrec.data.splits import leave_one_out_split
from llmrec.registry import BuildContext, build_scorer, get_spec, method_packages, register_scorer, scorer_specs
from llmrec.scoring import Scorer

PACKAGE = Path(__file__).resolve().parents[1] / "llmrec"
INFRASTRUCTURE = {"data", "candidates", "eval", "llm", "embed", "utils"}


def imported_packages(path: Path) -> set[str]:
    """Top-level llmrec sub-packages a module imports (``llmrec.x.y`` -> ``x``)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
        out |= {n.split(".")[1] for n in names if n.startswith("llmrec.") and n.count(".") >= 1}
    return out


def test_every_method_folder_registers_a_scorer_and_nothing_else_does():
    methods = set(method_packages())
    assert {"popularity", "itemcf", "bm25", "generation", "sasrec", "learn", "llmrank", "tallrec"} <= methods
    assert not methods & INFRASTRUCTURE
    specs = scorer_specs()
    registered_by = {spec.build.__module__.split(".")[1] for spec in specs.values()}
    assert registered_by == methods
    for spec in specs.values():
        assert spec.description and set(spec.tasks) <= {"ranking", "pointwise"}


def test_arrows_point_one_way():
    """Methods use infrastructure; infrastructure never imports a method; no method imports another
    method; nothing imports the CLI (scripts and benchmarks included)."""
    methods = set(method_packages())
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).parts
        owner = parts[0] if len(parts) > 1 else None
        imported = imported_packages(path)
        if owner != "cli":
            assert "cli" not in imported, f"{path} imports the CLI"
        if owner in INFRASTRUCTURE or owner is None:
            assert not imported & methods, f"{path} imports a method: {imported & methods}"
        if owner in methods:
            assert not (imported & methods) - {owner}, f"{path} imports another method: {imported & methods}"
    for folder in ("scripts", "benchmarks"):
        for path in (PACKAGE.parent / folder).rglob("*.py"):
            assert "cli" not in imported_packages(path), f"{path} imports the CLI"


def _toy_split():
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", str(i), t, float(rng.integers(1, 6))) for u in range(30)
            for t, i in enumerate(rng.choice(40, size=8, replace=False))]
    items = pd.DataFrame({ITEM: [str(i) for i in range(45)], "title": [f"game number {i}" for i in range(45)]})
    return leave_one_out_split(Dataset("toy", pd.DataFrame(rows, columns=[USER, ITEM, TIME, RATING]), items))


@pytest.mark.parametrize("name", ["popularity", "item-prior", "itemcf", "bm25"])
def test_light_scorers_build_from_the_known_events_and_score(name):
    split = _toy_split()
    scorer = build_scorer(name, BuildContext(split, part="test"))
    assert isinstance(scorer, Scorer)
    es = split.eval_set("test")
    catalog = [str(i) for i in split.dataset.items.index]
    scores = scorer.score(es.histories[:5], catalog)
    assert scores.shape == (5, len(catalog)) and np.isfinite(scores).all()
    per_user = scorer.score(es.histories[:3], [catalog[:4], catalog[4:8], catalog[8:12]])
    np.testing.assert_allclose(per_user[1], scores[1, 4:8])


def test_builders_never_see_held_out_events():
    """Popularity built for the test part counts train + valid only: a test event moves nothing."""
    split = _toy_split()
    scorer = build_scorer("popularity", BuildContext(split, part="test"))
    known = split.known("test")[ITEM].value_counts()
    for item, count in scorer.counts.items():
        assert count == known[item]
    assert sum(scorer.counts.values()) == len(split.known("test"))


def test_options_are_checked_against_the_config():
    split = _toy_split()
    assert build_scorer("itemcf", BuildContext(split), recency_decay=None).recency_decay is None
    with pytest.raises(ValueError, match="has no option 'decay'.*recency_decay"):
        build_scorer("itemcf", BuildContext(split), decay=3)
    with pytest.raises(ValueError, match="takes no options"):
        build_scorer("popularity", BuildContext(split), x=1)
    with pytest.raises(ValueError, match="unknown scorer 'nope'; registered: .*popularity"):
        get_spec("nope")


def test_a_registered_hybrid_takes_other_scorers_through_the_context():
    def build_blend(context, config):
        parts = [context.build("popularity"), context.build("itemcf")]

        class Blend:
            name = "blend"

            def score(self, histories, candidates):
                return sum(np.argsort(np.argsort(p.score(histories, candidates), axis=1), axis=1) for p in parts)

        return Blend()

    register_scorer("test-blend", build_blend, description="rank average (test)")
    try:
        split = _toy_split()
        scores = build_scorer("test-blend", BuildContext(split)).score([["1", "2"]], ["3", "4", "5"])
        assert scores.shape == (1, 3)
        with pytest.raises(ValueError, match="registered twice"):
            register_scorer("test-blend", lambda c, k: None)
    finally:
        from llmrec import registry

        registry._REGISTRY.pop("test-blend")
