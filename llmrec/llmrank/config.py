"""Settings of the LLMRank direct-ranking paradigm (Hou et al., ECIR 2024), one dataclass.

Every field carries its help text, so the CLI and the docs read from one place.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

PROMPTS = ("sequential", "recency", "icl")
MODES = ("generate", "score", "score-calibrated", "first-token")
CANDIDATE_STRATEGIES = ("llmrank", "multichannel")
FALLBACKS = ("input-order", "prior")


@dataclass
class LLMRankConfig:
    """How one LLMRank run builds prompts, asks the model and turns answers into scores."""

    prompt: str = field(default="sequential", metadata={
        "help": "prompt template under prompts/llmrank/: sequential (the history in order), recency "
                "(also names the most recent item), icl (the history minus its last item shown as a "
                "worked example, then the real question)"})
    mode: str = field(default="score", metadata={
        "help": "generate: the model writes a ranking that is parsed; score: rank by log P(candidate "
                "text | prompt); score-calibrated: the same minus log P(candidate text | prompt without "
                "history); first-token: candidates labelled A, B, ... ranked by the logit of their "
                "label at the first answer position (FIRST, EMNLP 2024)"})
    domain: str = field(default="item", metadata={
        "help": "noun the prompts use for an item (movie, game, product, news); defaults to the data set's"})
    few_shot: int = field(default=0, metadata={
        "help": "number of worked examples prepended to the prompt, built from *training* sequences of "
                "other users (0 = zero-shot)"})
    few_shot_candidates: int = field(default=5, metadata={
        "help": "candidates shown in each worked example (kept small: every token costs time on CPU)"})
    max_history: int = field(default=20, metadata={
        "help": "most recent history items put in the prompt"})
    max_item_chars: int = field(default=120, metadata={
        "help": "item text is cut to this many characters before quoting"})
    bootstrap: int = field(default=1, metadata={
        "help": "B: score B copies of the candidate list (the given order, then B-1 seeded shuffles) and "
                "sum the scores, against position bias (LLMRank section 4.3)"})
    max_new_tokens: int = field(default=120, metadata={
        "help": "generate mode: answer budget in tokens (identifiers only: about 4 tokens per candidate)"})
    fuzzy_threshold: float = field(default=85.0, metadata={
        "help": "generate mode: least rapidfuzz WRatio (0-100) for a line to count as a candidate's title"})
    fallback: str = field(default="input-order", metadata={
        "help": "generate mode: how candidates the answer leaves out are ordered below the ranked ones: "
                "input-order (the order the candidates came in: shuffled for the LLMRank protocol, "
                "recall order for multi-channel) or prior (a label-blind prior scorer, e.g. popularity)"})
    seed: int = field(default=0, metadata={
        "help": "seed for bootstrap shuffles and few-shot example sampling"})

    def __post_init__(self) -> None:
        checks = {"prompt": (self.prompt, PROMPTS), "mode": (self.mode, MODES),
                  "fallback": (self.fallback, FALLBACKS)}
        for name, (value, allowed) in checks.items():
            if value not in allowed:
                raise ValueError(f"LLMRankConfig.{name} must be one of {list(allowed)}, got {value!r}")
        for name in ("bootstrap", "max_history", "max_item_chars", "max_new_tokens", "few_shot_candidates"):
            if getattr(self, name) < 1:
                raise ValueError(f"LLMRankConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.few_shot < 0:
            raise ValueError(f"LLMRankConfig.few_shot must be >= 0, got {self.few_shot}")
        if not 0 <= self.fuzzy_threshold <= 100:
            raise ValueError(f"LLMRankConfig.fuzzy_threshold must be in [0, 100], got {self.fuzzy_threshold}")

    def to_dict(self) -> dict:
        return asdict(self)

