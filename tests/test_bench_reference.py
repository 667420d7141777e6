"""The fine-tuned reranker benches borrow SASRec's row from the evaluate_games record only when that
record scored the very same cases; a record of other cases must not slip into their tables."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from _finetuned import reference_results, verdict  # noqa: E402


def _result(ndcg: float, cases: int = 200) -> dict:
    return {"ndcg@10": ndcg, "population": {"cases": cases, "users_in_dataset": 50546}, "mode": "sampled-19"}


def _write(folder: Path, results: dict) -> None:
    (folder / "evaluate_games.json").write_text(json.dumps({"data": {"results": results}}))


def test_reference_rows_come_only_from_a_record_of_the_same_cases(tmp_path: Path) -> None:
    here = {"popularity": _result(0.567), "itemcf": _result(0.586), "nexttitle": _result(0.47)}
    stored = {"popularity": _result(0.567), "itemcf": _result(0.586), "sasrec": _result(0.77),
              "llmrank[score](smollm2-135m)": _result(0.25)}
    _write(tmp_path, stored)
    rows, why = reference_results(here, tmp_path)
    assert list(rows) == ["sasrec (evaluate_games)"]  # the record's LLM row is not a baseline
    assert "same cases" in why
    said = verdict({**here, **rows}, "nexttitle")
    assert "LOSES to" in said and "sasrec (evaluate_games)" in said and "NOT met" in said

    _write(tmp_path, {**stored, "itemcf": _result(0.601)})  # another case sample: item-CF differs
    rows, why = reference_results(here, tmp_path)
    assert rows == {} and "other cases" in why and "0.6010" in why
    _write(tmp_path, {**stored, "popularity": _result(0.567, cases=300)})  # same number, other population
    assert reference_results(here, tmp_path)[0] == {}


def test_no_reference_record_says_so(tmp_path: Path) -> None:
    rows, why = reference_results({"popularity": _result(0.5), "itemcf": _result(0.6)}, tmp_path)
    assert rows == {} and "SASRec is missing" in why


@pytest.mark.parametrize("llm, goal", [(0.60, "met"), (0.50, "NOT met")])
def test_verdict_states_the_item_cf_goal(llm: float, goal: str) -> None:
    said = verdict({"popularity": _result(0.55), "itemcf": _result(0.586), "llamarec": _result(llm)}, "llamarec")
    assert said.endswith(f"Goal (fine-tuned reranker above item-CF): {goal}.")
