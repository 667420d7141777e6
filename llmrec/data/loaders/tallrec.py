"""TALLRec's instruction data: Alpaca-style JSON, a list of {instruction, input, output}.

The output is the answer the model must give, "Yes." or "No."; ``label`` is 1 for yes. This is
prompt data (TALLRec fine-tuning and its P(Yes) scorer), not an interactions Dataset.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from llmrec.errors import DataFormatError

FIELDS = ("instruction", "input", "output")
_ANSWERS = {"yes": 1, "no": 0}


@dataclass(frozen=True)
class TallRecExample:
    instruction: str
    input: str
    output: str
    label: int
    """1 when ``output`` says yes, 0 when it says no."""
    offset: float = 0.0
    """A logit added to the model's logit(Yes) - logit(No): 0 for TALLRec as published; a collaborative
    prior's logit with TALLRec's ``prior`` option (``llmrec.tallrec.prior``). Never read from a file."""


def parse_answer(text: str) -> int | None:
    """1 for "Yes." / "yes" / " YES ", 0 for "No." and the like, None for anything else."""
    word = text.strip().rstrip(".!").strip().lower()
    return _ANSWERS.get(word)


def read_tallrec_json(path: str | Path) -> list[TallRecExample]:
    """Read and validate a TALLRec JSON file; a bad entry is named by index and field."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as err:
        raise DataFormatError(path, "UTF-8 JSON", got=str(err)) from None
    except json.JSONDecodeError as err:
        raise DataFormatError(path, f"valid JSON ({err.msg})", line=err.lineno) from None
    if not isinstance(data, list) or not data:
        raise DataFormatError(path, "a non-empty JSON list of {instruction, input, output} objects",
                              got=type(data).__name__ if data else data)
    examples: list[TallRecExample] = []
    for index, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise DataFormatError(path, "an object with instruction, input and output", field=f"[{index}]",
                                  got=entry)
        for name in FIELDS:
            value = entry.get(name)
            if not isinstance(value, str):
                raise DataFormatError(path, "a string", field=f"[{index}].{name}",
                                      got="nothing" if name not in entry else value)
        if not entry["instruction"].strip():
            raise DataFormatError(path, "a non-empty instruction", field=f"[{index}].instruction", got="")
        label = parse_answer(entry["output"])
        if label is None:
            raise DataFormatError(path, 'an answer "Yes." or "No."', field=f"[{index}].output",
                                  got=entry["output"])
        examples.append(TallRecExample(entry["instruction"], entry["input"], entry["output"], label))
    return examples
