"""TALLRec's scorer: P(Yes) from the two answer-token logits at the answer position.

Nothing here is tied to one tokenizer. The answer tokens are looked up *in context*: the tokenizer
encodes a rendered prompt and the prompt followed by "Yes" (and "No"), and the first token where
the two differ is the answer token. That finds ``Yes`` after a newline in a BPE vocabulary,
``ĠYes`` after "Answer:" (a leading space is added when the prompt does not end in whitespace),
``▁Yes`` in SentencePiece vocabularies and ``yes`` in a lower-casing WordPiece one, without any
hard-coded token id (TALLRec's public code hard-codes LLaMA-1's ids 3869 / 1939).

The same ``PromptEncoder`` builds the training rows (prompt ids + answer ids) and the scoring
prompts, so the position scored is exactly the position trained.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import torch
from tqdm.auto import tqdm

from llmrec.data.loaders.tallrec import TallRecExample
from llmrec.llm.base import AmbiguousOptionsError

logger = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "prompts" / "tallrec"
ANSWERS = ("Yes", "No")
#: What the model is trained to write after the answer word (TALLRec's outputs are "Yes." / "No.").
ANSWER_SUFFIX = "."


@functools.lru_cache(maxsize=1)
def template_environment() -> jinja2.Environment:
    # Plain text (no HTML escaping); the trailing newline of alpaca.j2 is part of the prompt.
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)), autoescape=False,
                              keep_trailing_newline=True, undefined=jinja2.StrictUndefined)


def load_prompt_template(name: str) -> jinja2.Template:
    """A template under prompts/tallrec/ by name (``alpaca``), or a path to a .j2 file."""
    if (TEMPLATE_DIR / f"{name}.j2").is_file() and "/" not in name:
        return template_environment().get_template(f"{name}.j2")
    path = Path(name).expanduser()
    if path.is_file():
        return template_environment().from_string(path.read_text(encoding="utf-8"))
    known = sorted(p.stem for p in TEMPLATE_DIR.glob("*.j2"))
    raise ValueError(f"unknown TALLRec template {name!r}: give one of {known}, 'chat', or a path to a .j2 file")


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def answer_lead(prompt_text: str) -> str:
    """A space before the answer word unless the prompt already ends in whitespace (newline, space)."""
    return "" if not prompt_text or prompt_text[-1].isspace() else " "


def answer_token_ids(tokenizer: Any, prompt_text: str, answers: Sequence[str] = ANSWERS,
                     add_special_tokens: bool = True) -> list[int]:
    """The first token of each answer as the tokenizer encodes it right after ``prompt_text``.

    Raises ``AmbiguousOptionsError`` when two answers start with the same token (their logits could
    not be told apart) and ``ValueError`` when an answer adds no token at all.
    """
    prompt_ids = list(tokenizer(prompt_text, add_special_tokens=add_special_tokens)["input_ids"])
    lead = answer_lead(prompt_text)
    ids: list[int] = []
    for answer in answers:
        full = list(tokenizer(prompt_text + lead + answer, add_special_tokens=add_special_tokens)["input_ids"])
        start = common_prefix_length(prompt_ids, full)
        # A tokenizer that appends an end token ([SEP]) makes the prompt end differ from the full text
        # there; the first differing position is still where the answer starts.
        if start >= len(full):
            raise ValueError(f"answer {answer!r} adds no token after the prompt with this tokenizer")
        ids.append(int(full[start]))
    if len(set(ids)) < len(ids):
        words = [tokenizer.convert_ids_to_tokens(i) for i in ids]
        raise AmbiguousOptionsError(f"answers {list(answers)} share a first token {words}; P(Yes) is undefined")
    return ids


@dataclass
class EncodedExample:
    input_ids: list[int]
    completion_mask: list[int]


class PromptEncoder:
    """Renders TALLRec examples as prompts and encodes them for training and for scoring.

    ``template``: a name under prompts/tallrec/ (``alpaca``) or a .j2 path, rendered as raw text; or
    ``chat``: instruction and input as one user turn of the tokenizer's chat template (the template
    adds the assistant opener, and the answer follows it).
    """

    def __init__(self, tokenizer: Any, template: str = "alpaca", max_length: int = 512) -> None:
        self.tokenizer = tokenizer
        self.template_name = template
        self.max_length = max_length
        if template == "chat":
            if not getattr(tokenizer, "chat_template", None):
                raise ValueError("template 'chat' needs a tokenizer with a chat template; use 'alpaca' for base models")
            self._template = load_prompt_template("chat")
        else:
            self._template = load_prompt_template(template)
        # A rendered chat template already holds its special tokens; raw text gets the tokenizer's BOS.
        self.add_special_tokens = template != "chat"
        probe = self.render(TallRecExample("Answer.", "Is this a probe?", "Yes.", 1))
        self.lead = answer_lead(probe)
        self.yes_id, self.no_id = answer_token_ids(tokenizer, probe, ANSWERS, self.add_special_tokens)
        self._check_boundary(probe)

    def render(self, example: TallRecExample) -> str:
        text = self._template.render(instruction=example.instruction, input=example.input)
        if self.template_name != "chat":
            return text
        messages = [{"role": "user", "content": text.strip()}]
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def _encode(self, text: str, special: bool) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def prompt_ids(self, example: TallRecExample, reserve: int = 2) -> list[int]:
        """Prompt token ids, cut from the left (oldest text first) so that ``reserve`` answer tokens
        still fit in ``max_length``; the target item, last in the input, always stays."""
        ids = self._encode(self.render(example), self.add_special_tokens)
        room = self.max_length - reserve
        return ids if len(ids) <= room else ids[len(ids) - room:]

    def answer_ids(self, label: int) -> list[int]:
        """Tokens of the trained answer ("Yes." / "No." plus end of sequence), answer token first."""
        word = ANSWERS[0] if label == 1 else ANSWERS[1]
        ids = self._encode(self.lead + word + ANSWER_SUFFIX, False)
        first = self.yes_id if label == 1 else self.no_id
        if not ids or ids[0] != first:
            # The answer alone tokenises differently than after the prompt (e.g. SentencePiece's
            # dummy prefix): keep the in-context first token so training and scoring agree.
            ids = [first] + self._encode(ANSWER_SUFFIX, False)
        eos = self.tokenizer.eos_token_id
        return ids + ([eos] if isinstance(eos, int) else [])

    def encode_for_training(self, example: TallRecExample) -> EncodedExample:
        answer = self.answer_ids(example.label)
        prompt = self.prompt_ids(example, reserve=len(answer))
        return EncodedExample(prompt + answer, [0] * len(prompt) + [1] * len(answer))

    def _check_boundary(self, probe: str) -> None:
        joined = self._encode(probe + self.lead + ANSWERS[0] + ANSWER_SUFFIX, self.add_special_tokens)
        alone = self._encode(probe, self.add_special_tokens)
        if common_prefix_length(alone, joined) < len(alone) - (1 if self.add_special_tokens else 0):
            logger.warning("the prompt's last token merges with the answer in this tokenizer; training uses the "
                           "prompt tokens as encoded alone, so it matches scoring")


class YesNoScorer:
    """P(Yes) = softmax over the Yes and No logits at the answer position; batched, left-padded."""

    def __init__(self, model: Any, tokenizer: Any, template: str = "alpaca", max_length: int = 512,
                 batch_size: int = 8, show_progress: bool = False, name: str = "tallrec",
                 autocast_bf16: bool = False) -> None:
        self.model = model
        # bf16 on a CPU: fp32 weights under bf16 autocast (as the Trainer trains them), see cpu_autocast.
        self.autocast_bf16 = autocast_bf16
        self.tokenizer = tokenizer
        self.encoder = PromptEncoder(tokenizer, template=template, max_length=max_length)
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.name = name
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = int(pad) if pad is not None else 0

    @property
    def answer_ids(self) -> tuple[int, int]:
        return self.encoder.yes_id, self.encoder.no_id

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def answer_logits(self, examples: Sequence[TallRecExample]) -> np.ndarray:
        """(n, 2) logits of Yes and No at each prompt's answer position."""
        was_training = self.model.training
        self.model.eval()
        encoded = [self.encoder.prompt_ids(e) for e in examples]
        # Similar lengths in one batch waste little on padding; results go back in input order.
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        out = np.zeros((len(encoded), 2), dtype=np.float64)
        columns = torch.tensor([self.encoder.yes_id, self.encoder.no_id])
        starts = range(0, len(order), self.batch_size)
        try:
            for s in tqdm(starts, desc="P(Yes)", disable=not self.show_progress, leave=False):
                rows = order[s:s + self.batch_size]
                width = max(len(encoded[i]) for i in rows)
                ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(rows), width), dtype=torch.long)
                for r, i in enumerate(rows):
                    seq = encoded[i]
                    ids[r, width - len(seq):] = torch.tensor(seq)
                    mask[r, width - len(seq):] = 1
                # Left padding puts every answer position last; explicit positions keep each row's
                # positions as if unpadded, so a batched score equals the single-example score.
                positions = (mask.cumsum(-1) - 1).clamp(min=0)
                device = self.device
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.autocast_bf16):
                    logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device),
                                        position_ids=positions.to(device), logits_to_keep=1).logits
                out[rows] = logits[:, -1, :].index_select(-1, columns.to(device)).double().cpu().numpy()
        finally:
            if was_training:
                self.model.train()
        return out

    def p_yes(self, examples: Sequence[TallRecExample]) -> np.ndarray:
        """Probability of "Yes" among {Yes, No} for each example, in (0, 1), after each example's
        ``offset`` (a collaborative prior's logit; 0 for TALLRec as published) is added to the gap."""
        if len(examples) == 0:
            return np.zeros(0)
        logits = self.answer_logits(examples)
        gap = logits[:, 0] - logits[:, 1] + np.array([e.offset for e in examples], dtype=np.float64)
        return 1.0 / (1.0 + np.exp(-gap))  # softmax over two = sigmoid of the gap

    def evaluate(self, examples: Sequence[TallRecExample]) -> dict:
        """AUC (and log loss, accuracy) of P(Yes) against the examples' labels, via the evaluator's metrics."""
        from llmrec.eval.metrics import binary_metrics

        scores = self.p_yes(examples)
        metrics = binary_metrics([e.label for e in examples], scores)
        metrics["n"] = len(examples)
        return metrics
