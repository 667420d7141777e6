"""The LLMRank reranker: an LLM asked about a user's candidates, as a Scorer.

Three ways to turn the model into scores (``LLMRankConfig.mode``):

* ``generate``: the model writes a ranking; :func:`parse_ranking` reads it. Candidates it ranks
  get rank-based (Borda) scores; the ones it leaves out follow below them in a label-blind fallback
  order: the order the candidates came in (``input-order``: shuffled for the LLMRank protocol,
  recall order for multi-channel) or a prior scorer's order (``prior``, e.g. popularity).
* ``score``: log P(candidate text | prompt), one batched ``loglikelihood`` call per prompt (the
  backend shares the prompt's computation across candidates). ``score-calibrated`` subtracts
  log P(candidate text | the same prompt without the history), removing how likely a title is
  in itself and where it stands in the list.
* ``first-token`` (FIRST, EMNLP 2024): candidates labelled A, B, ...; one forward; each candidate
  scores the log-softmax (over the labels) of its label's logit at the first answer position.

Bootstrapping (``bootstrap`` = B) asks about B orders of the candidates (the given one, then seeded
shuffles) and sums the scores. The scorer sees histories and candidate ids only: no label reaches
a prompt, a retry (there are none) or the parser.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from tqdm.auto import tqdm

from llmrec.llm.base import LanguageModel
from llmrec.llmrank.bootstrap import bootstrap_orders, borda_scores
from llmrec.llmrank.config import LLMRankConfig
from llmrec.llmrank.parsing import ParseResult, complete_order, parse_ranking
from llmrec.llmrank.prompts import PROMPTS_DIR, Demonstration, PromptBuilder, labels_for
from llmrec.scoring import Candidates, Histories, Scorer, per_user_candidates

#: More candidates than this do not fit a small model's prompt (and full-catalogue ranking is not reranking).
MAX_CANDIDATES = 100


@dataclass
class RerankStats:
    """Running counts for a report: parse outcomes (generate mode), users and seconds."""

    users: int = 0
    prompts: int = 0
    seconds: float = 0.0
    answers: int = 0
    failed_answers: int = 0
    """Answers from which not one candidate could be read."""
    lines: int = 0
    unparseable_lines: int = 0
    out_of_candidate: int = 0
    duplicates: int = 0
    ranked: int = 0
    """Candidates the answers ranked (the rest came from the fallback)."""
    offered: int = 0
    """Candidates the answers were asked to rank."""
    rejected: int = 0
    """Candidates the answers explicitly rejected ("I would avoid [5]"): not ranked, left to the fallback."""
    examples: list[str] = field(default_factory=list)

    def add_parse(self, result: ParseResult, n_candidates: int, answer: str) -> None:
        self.answers += 1
        self.failed_answers += int(result.failed)
        self.lines += result.lines
        self.unparseable_lines += result.unparseable_lines
        self.out_of_candidate += result.out_of_candidate
        self.duplicates += result.duplicates
        self.ranked += len(result.order)
        self.offered += n_candidates
        self.rejected += len(result.rejected)
        if len(self.examples) < 3:
            self.examples.append(answer[:500])

    def as_dict(self) -> dict:
        out = asdict(self)
        named = self.ranked + self.out_of_candidate + self.duplicates
        out.update({
            "seconds_per_user": self.seconds / self.users if self.users else None,
            "parse_failure_rate": self.failed_answers / self.answers if self.answers else None,
            "unparseable_line_rate": self.unparseable_lines / self.lines if self.lines else None,
            "out_of_candidate_rate": self.out_of_candidate / named if named else None,
            "duplicate_rate": self.duplicates / named if named else None,
            "ranked_fraction": self.ranked / self.offered if self.offered else None,
            "rejected_rate": self.rejected / self.answers if self.answers else None,  # rejections per answer
        })
        return out


class LLMRankScorer:
    """Scorer: rerank each user's candidates with a language model (see the module docstring).

    ``item_text`` maps item ids to their text (e.g. titles). ``prior`` orders the candidates a
    generated answer leaves out when ``config.fallback == "prior"``. ``demonstrations`` are few-shot
    examples (``prompts.build_demonstrations`` makes them from training data).
    """

    def __init__(
        self,
        llm: LanguageModel,
        item_text: Mapping[str, str] | Callable[[str], str],
        config: LLMRankConfig | None = None,
        *,
        prior: Scorer | None = None,
        demonstrations: Sequence[Demonstration] = (),
        template_dir: str = str(PROMPTS_DIR),
        show_progress: bool = True,
    ) -> None:
        self.llm = llm
        self.config = config or LLMRankConfig()
        if self.config.fallback == "prior" and prior is None:
            raise ValueError("fallback='prior' needs a prior scorer (e.g. PopularityScorer(train))")
        self.prior = prior
        if self.config.few_shot and not demonstrations:
            raise ValueError(f"few_shot={self.config.few_shot} needs demonstrations: pass "
                             "prompts.build_demonstrations(train_interactions, k) (training data only)")
        self.demonstrations = list(demonstrations)[: self.config.few_shot] if self.config.few_shot else []
        self.builder = PromptBuilder(item_text, prompt=self.config.prompt, domain=self.config.domain,
                                     max_history=self.config.max_history,
                                     max_item_chars=self.config.max_item_chars, template_dir=template_dir)
        # Models without a chat template get plain text ending in an answer cue.
        self.chat = bool(getattr(llm, "has_chat_template", True))
        self.show_progress = show_progress
        self.stats = RerankStats()
        self._checked_labels: set[int] = set()
        self.name = f"llmrank[{self.config.mode},{self.config.prompt},B={self.config.bootstrap}]({llm.name})"

    def reset_stats(self) -> None:
        self.stats = RerankStats()

    # --- Scorer ------------------------------------------------------------------------------
    def score(self, histories: Histories, candidates: Candidates) -> np.ndarray:
        start = time.perf_counter()
        rows = [list(map(str, c)) for c in per_user_candidates(candidates, len(histories))]
        widths = {len(r) for r in rows}
        if len(widths) > 1:
            raise ValueError(f"per-user candidate lists must have equal length, got lengths {sorted(widths)}")
        n = widths.pop() if widths else 0
        if n > MAX_CANDIDATES:
            raise ValueError(f"LLMRank reranks short candidate lists (every candidate goes into the prompt); got "
                             f"{n} per user, at most {MAX_CANDIDATES}. Rank sampled or recalled candidates "
                             "(the evaluator's sampled, recalled or given modes), not the catalogue")
        scores = np.zeros((len(histories), n), dtype=np.float64)
        if n == 0 or not histories:
            return scores
        # (user, order) for every bootstrap copy; copy 0 is the order given.
        jobs = [(u, order) for u, cands in enumerate(rows)
                for order in bootstrap_orders(cands, self.config.bootstrap, self.config.seed)]
        mode = self.config.mode
        if mode == "generate":
            self._generate(histories, rows, jobs, scores)
        elif mode in ("score", "score-calibrated"):
            self._loglikelihood(histories, rows, jobs, scores, calibrated=mode == "score-calibrated")
        else:
            self._first_token(histories, rows, jobs, scores)
        self.stats.users += len(histories)
        self.stats.prompts += len(jobs)
        self.stats.seconds += time.perf_counter() - start
        return scores

    # --- modes -------------------------------------------------------------------------------
    def _prompt(self, history: Sequence[str], shown: list[str], include_history: bool = True):
        return self.builder.prompt(history, shown, self.config.mode, self.demonstrations,
                                   include_history=include_history, chat=self.chat)

    def _generate(self, histories: Histories, rows: list[list[str]], jobs: list, scores: np.ndarray) -> None:
        n = scores.shape[1]
        fallback = self._fallback_orders(histories, rows)
        prompts = [self._prompt(histories[u], [rows[u][i] for i in order]) for u, order in jobs]
        answers = self.llm.generate(prompts, max_new_tokens=self.config.max_new_tokens, temperature=0.0)
        labels = labels_for("generate", n)
        for (u, order), answer in zip(jobs, answers):
            shown_titles = [self.builder.display_text(rows[u][i]) for i in order]
            parsed = parse_ranking(answer.text, labels, shown_titles, self.config.fuzzy_threshold)
            self.stats.add_parse(parsed, n, answer.text)
            ranked = [int(order[j]) for j in parsed.order]  # shown position -> index in the given list
            scores[u] += borda_scores(complete_order(ranked, fallback[u]), n)

    def _fallback_orders(self, histories: Histories, rows: list[list[str]]) -> list[list[int]]:
        """Label-blind order for candidates an answer leaves out."""
        n = len(rows[0])
        if self.config.fallback == "input-order" or self.prior is None:
            return [list(range(n))] * len(rows)
        prior = np.asarray(self.prior.score(histories, rows), dtype=np.float64)
        return [list(np.argsort(-p, kind="stable")) for p in prior]

    def _loglikelihood(self, histories: Histories, rows: list[list[str]], jobs: list, scores: np.ndarray,
                       calibrated: bool) -> None:
        requests = []
        for u, order in jobs:
            shown = [rows[u][i] for i in order]
            texts = [self.builder.display_text(i) for i in shown]
            requests.append((self._prompt(histories[u], shown), texts))
            if calibrated:
                requests.append((self._prompt(histories[u], shown, include_history=False), texts))
        results = self.llm.loglikelihood_batch(requests)
        step = 2 if calibrated else 1
        for j, (u, order) in enumerate(jobs):
            values = np.asarray(results[j * step], dtype=np.float64)
            if calibrated:
                values = values - np.asarray(results[j * step + 1], dtype=np.float64)
            scores[u, order] += values

    def _first_token(self, histories: Histories, rows: list[list[str]], jobs: list, scores: np.ndarray) -> None:
        n = scores.shape[1]
        labels = labels_for("first-token", n)
        self._check_single_tokens(labels)
        for u, order in tqdm(jobs, desc=f"first-token ({self.llm.name})",
                             disable=not self.show_progress or len(jobs) < 2):
            logits = np.asarray(self.llm.next_token_logits(self._prompt(histories[u], [rows[u][i] for i in order]),
                                                          labels), dtype=np.float64)
            shifted = logits - logits.max()
            scores[u, order] += shifted - np.log(np.exp(shifted).sum())

    def _check_single_tokens(self, labels: list[str]) -> None:
        """FIRST reads one logit per candidate, so every label must be exactly one token; the backend
        separately refuses labels that share a first token (AmbiguousOptionsError)."""
        if len(labels) in self._checked_labels:
            return
        forms = labels if self.chat else labels + [" " + lab for lab in labels]
        bad = [f for f in forms if self.llm.token_count(f) != 1]
        if bad:
            raise ValueError(f"first-token mode needs single-token candidate labels; {bad[:5]} take more than "
                             f"one token with {self.llm.name}'s tokenizer")
        self._checked_labels.add(len(labels))

    # --- report ------------------------------------------------------------------------------
    def diagnostics(self) -> dict:
        """Parse outcomes and timing, attached by the evaluator to each result."""
        stats = self.stats.as_dict()
        out = {k: stats[k] for k in ("parse_failure_rate", "unparseable_line_rate", "out_of_candidate_rate",
                                     "rejected_rate", "seconds_per_user", "users", "prompts") if k in stats}
        if stats.get("examples"):
            out["first_answer"] = stats["examples"][0][:200]
        usage = getattr(self.llm, "usage", None)
        if usage is not None:
            out["usage"] = asdict(usage)
        return out

    def report(self) -> dict:
        usage = getattr(self.llm, "usage", None)
        return {
            "scorer": self.name,
            "config": self.config.to_dict(),
            "stats": self.stats.as_dict(),
            "usage": asdict(usage) if usage is not None else None,
        }
