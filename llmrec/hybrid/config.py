"""Settings of the cold-aware hybrid scorer."""

from __future__ import annotations

from dataclasses import dataclass, field

OBJECTIVES = ("constrained", "all", "all+cold")


@dataclass
class HybridConfig:
    """Which signals the hybrid blends, and how its weights are fitted (on validation only)."""

    cf: str = field(default="itemcf", metadata={
        "help": "registered collaborative scorer for items with known events (itemcf, sasrec, ...); empty: none"})
    text: str = field(default="embedding", metadata={
        "help": "registered text scorer (the text bridge for every item, cold ones included); empty: none"})
    recent_share: float = field(default=0.2, metadata={
        "help": "popularity counts the known events of the latest this share of the known time span "
                "(recent popularity follows drift; 1.0 = all-time popularity)"})
    bridge_windows: int = field(default=4, metadata={
        "help": "content-to-popularity bridge: the items cold at the start of each of this many recent "
                "windows of the known period teach it how popular a cold item becomes from its content fields"})
    date_column: str | None = field(default="auto", metadata={
        "help": "catalogue column with a release date for the bridge (auto: release_date when present; "
                "none: no date feature)"})
    category_columns: list[str] = field(default_factory=lambda: ["genres", "categories", "category"], metadata={
        "help": "catalogue columns of comma-separated categories used by the bridge (those present)"})
    valid_share: float = field(default=0.1, metadata={
        "help": "the latest this share of known events (by time) is the validation part the weights are fitted "
                "on; the test part is never used"})
    objective: str = field(default="constrained", metadata={
        "help": "what the weights maximise on validation: constrained (cold-start NDCG@10 among the blends whose "
                "all-target NDCG@10 is within all_slack of the best blend's), all (NDCG@10 over all targets) or "
                "all+cold (the mean of the two); all alone when validation has no cold-start target"})
    all_slack: float = field(default=0.05, metadata={
        "help": "constrained objective: the share of the best all-target NDCG@10 on validation the blend may give "
                "up to rank cold-start items higher"})
    weights: list[float] | None = field(default=None, metadata={
        "help": "fixed weights [popularity, cf, text, cold_offset] instead of fitting them (ablations)"})
    valid_cases: int | None = field(default=500, metadata={"help": "seeded subsample of validation cases"})
    simulated_events: str | None = field(default=None, metadata={
        "help": "CSV of simulated interactions (llmrec coldstart simulate) the CF scorer retrains with"})
    enriched_text: str | None = field(default=None, metadata={
        "help": "file of LLM-enriched item text (llmrec coldstart enrich) the text scorer reads"})
    name: str = field(default="hybrid", metadata={"help": "the scorer's name in result tables"})

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"HybridConfig.objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if not 0 <= self.all_slack < 1:
            raise ValueError(f"HybridConfig.all_slack must lie in [0, 1), got {self.all_slack}")
        if not 0 < self.recent_share <= 1 or not 0 < self.valid_share < 1:
            raise ValueError(f"HybridConfig: need 0 < recent_share <= 1 and 0 < valid_share < 1, got "
                             f"{self.recent_share}, {self.valid_share}")
        if self.weights is not None and len(self.weights) != 4:
            raise ValueError(f"HybridConfig.weights takes 4 numbers [popularity, cf, text, cold_offset], got "
                             f"{self.weights}")
        if self.bridge_windows < 1:
            raise ValueError(f"HybridConfig.bridge_windows must be >= 1, got {self.bridge_windows}")
