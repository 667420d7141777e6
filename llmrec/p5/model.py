"""The P5 text-to-text model: a Hugging Face model, its tokenizer with one token per ID symbol, the
item index and the trie of valid IDs, with the two ways P5 ranks items.

* ``t5`` (CPU): a small T5 encoder-decoder built from a config (no weights can be downloaded here)
  over a word-level tokenizer of the prompt templates' words, the answers' words and the ID tokens.
  Default size: d_model 128, 2 + 2 layers, 4 heads, d_ff 512 (about 0.9 M parameters plus
  128 per vocabulary entry).
* ``causal`` (GPU): any packaged or local causal LM; the ID tokens are added to its tokenizer and
  trained as new embedding rows (peft ``trainable_token_indices``) next to LoRA adapters, which are
  merged into the saved model.

Ranking: ``log_likelihoods`` gives every candidate the log-probability of its ID (then EOS) after the
prompt, one teacher-forced pass over all candidates (the encoder runs once per prompt); ``generate``
runs beam search, through the trie (every beam names an item) or unconstrained (to count invalid IDs).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmrec.p5.config import P5Config
from llmrec.p5.files import load_index, save_index
from llmrec.p5.indexing import ItemIndex
from llmrec.p5.trie import IdTrie, add_id_tokens
from llmrec.utils.io import write_json

SPECIAL = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}
META_NAME = "p5_config.json"
INDEX_NAME = "item_index.json"


def word_tokenizer(texts: Iterable[str], index: ItemIndex) -> Any:
    """A whitespace word-level tokenizer over ``texts`` (templates and training answers) plus one
    added token per ID symbol of ``index``; words it never saw read as ``<unk>``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for text in texts for w in text.split()} - set(index.vocabulary))
    vocab = {tok: i for i, tok in enumerate([SPECIAL["pad_token"], SPECIAL["eos_token"], SPECIAL["unk_token"],
                                             *words])}
    raw = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL["unk_token"]))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, **SPECIAL)
    add_id_tokens(tokenizer, index)
    return tokenizer


def tiny_t5(config: P5Config, tokenizer: Any) -> Any:
    from transformers import T5Config, T5ForConditionalGeneration, set_seed

    set_seed(config.seed)
    t5 = T5Config(vocab_size=len(tokenizer), d_model=config.d_model, d_kv=config.d_model // config.n_heads,
                  d_ff=config.d_ff, num_layers=config.n_layers, num_decoder_layers=config.n_layers,
                  num_heads=config.n_heads, dropout_rate=config.dropout, feed_forward_proj="relu",
                  pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    # Not in T5Config's typed signature in transformers 5, but read by the model and generate().
    t5.decoder_start_token_id = tokenizer.pad_token_id
    t5.tie_word_embeddings = True
    return T5ForConditionalGeneration(t5)


def trained_for(split: Any, part: str) -> dict[str, Any]:
    """What a model was trained for: evaluating it on another data set, split, user sample or an
    earlier part (a model trained for 'test' has learned the 'valid' targets) would be wrong or leak."""
    return {"dataset": split.dataset.name, "split": split.name, "part": part,
            "users": int(split.dataset.interactions["user_id"].nunique())}


def check_trained_for(saved: dict[str, Any], split: Any, part: str, folder: str | Path) -> None:
    if not saved:
        return
    now = trained_for(split, part)
    wrong = [k for k in ("dataset", "split", "users") if k in saved and saved[k] != now[k]]
    if wrong:
        raise ValueError(f"the P5 model in {folder} was trained for {saved}, not for {now} (differs in "
                         f"{', '.join(wrong)}): evaluate it on the data it was trained for, or retrain")
    if saved.get("part") == "test" and part == "valid":
        raise ValueError(f"the P5 model in {folder} was trained for the test part (on train + valid events), "
                         "so it has learned the valid targets: retrain with --part valid to evaluate on valid")


def causal_with_lora(config: P5Config, index: ItemIndex) -> tuple[Any, Any]:
    """The base causal LM with the ID tokens added and LoRA + trainable new token rows (peft)."""
    from peft import LoraConfig, get_peft_model

    from llmrec.llm.hf import HFCausalLM
    from llmrec.llm.registry import resolve_model

    location = resolve_model(config.base_model)  # packaged names, local folders (hub ids only when online)
    source = location.folder if location.folder is not None else location.hub_id
    llm = HFCausalLM.from_pretrained(str(source), dtype="bfloat16" if config.bf16 else "float32")
    model, tokenizer = llm.model, llm.tokenizer
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    add_id_tokens(tokenizer, index)
    model.resize_token_embeddings(len(tokenizer))
    new_rows = tokenizer.convert_tokens_to_ids(index.vocabulary)
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.05,
                      target_modules=list(config.target_modules), trainable_token_indices=list(new_rows),
                      bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model.train(), lora), tokenizer


class P5Model:
    """A trained (or freshly built) P5 model with what it needs to name items."""

    def __init__(self, model: Any, tokenizer: Any, index: ItemIndex, config: P5Config):
        self.model, self.tokenizer, self.index, self.config = model, tokenizer, index, config
        self.causal = not getattr(model.config, "is_encoder_decoder", False)
        if self.causal:
            tokenizer.padding_side = "left"  # every prompt ends at the same column for generate()
        self.trie = IdTrie.from_index(index, tokenizer)
        self._targets = {item: [*ids, self.trie.eos_token_id] for ids, item in self.trie.paths()}
        self.max_id_tokens = max(len(t) for t in self._targets.values())
        self.train_report: dict[str, Any] = {}
        self.trained_for: dict[str, Any] = {}

    @classmethod
    def build(cls, config: P5Config, index: ItemIndex, texts: Iterable[str]) -> P5Model:
        """An untrained model for ``index``; ``texts``: words the t5 tokenizer must know."""
        if config.architecture == "causal":
            model, tokenizer = causal_with_lora(config, index)
            return cls(model, tokenizer, index, config)
        tokenizer = word_tokenizer(texts, index)
        return cls(tiny_t5(config, tokenizer), tokenizer, index, config)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # --- persistence -------------------------------------------------------------------------------
    def save(self, folder: str | Path, trained_for: dict[str, Any] | None = None) -> Path:
        """Weights (safetensors), tokenizer, config and index in ``folder``; LoRA is merged first.
        ``trained_for``: the data set, split and part it was trained for (checked when it is loaded)."""
        folder = Path(folder)
        model = self.model
        if hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
            self.model = model
        model.save_pretrained(folder, safe_serialization=True)
        self.tokenizer.save_pretrained(folder)
        save_index(self.index, folder / INDEX_NAME)
        write_json(folder / META_NAME, {"config": self.config.to_dict(), "leaky": self.index.leaky,
                                        "index": self.index.name, "trained_for": trained_for or {}})
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: str | None = None) -> P5Model:
        from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

        folder = Path(folder)
        if not (folder / META_NAME).is_file():
            raise FileNotFoundError(f"{folder} is not a saved P5 model (no {META_NAME}); train one with "
                                    "`llmrec p5 train`")
        meta = json.loads((folder / META_NAME).read_text())
        config = P5Config.from_dict(meta["config"])
        auto = AutoModelForCausalLM if config.architecture == "causal" else AutoModelForSeq2SeqLM
        model = auto.from_pretrained(folder, trust_remote_code=False, use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
        out = cls(model.eval(), tokenizer, load_index(folder / INDEX_NAME), config)
        out.trained_for = dict(meta.get("trained_for") or {})
        if device:
            out.model.to(device)
        return out

    # --- scoring -----------------------------------------------------------------------------------
    def _encode(self, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(list(prompts), add_special_tokens=False, padding=True, return_tensors="pt")
        return {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}

    def _target_matrix(self, items: Sequence[str]) -> torch.Tensor:
        rows = torch.full((len(items), self.max_id_tokens + 1), -100, dtype=torch.long)
        for i, item in enumerate(items):
            ids = self._targets.get(item)
            if ids is None:
                raise KeyError(f"item {item!r} has no ID in the {self.index.name} index")
            rows[i, : len(ids)] = torch.as_tensor(ids)
        return rows[:, : max(len(self._targets[i]) for i in items)].contiguous() if len(items) else rows

    @torch.no_grad()
    def log_likelihoods(self, prompt: str, items: Sequence[str], chunk: int = 2048) -> np.ndarray:
        """log P(ID(item) + EOS | prompt) for every item (one prompt, many candidates)."""
        self.model.eval()
        if not len(items):
            return np.zeros(0)
        encoded = self._encode([prompt])
        out = np.empty(len(items), dtype=np.float64)
        encoder_states = None
        if not self.causal:
            encoder_states = self.model.get_encoder()(**encoded).last_hidden_state
        for start in range(0, len(items), chunk):
            labels = self._target_matrix(items[start:start + chunk]).to(self.device)
            n = labels.shape[0]
            if self.causal:
                prompt_ids = encoded["input_ids"].expand(n, -1)
                ids = torch.cat([prompt_ids, labels.clamp(min=0)], dim=1)
                mask = torch.cat([encoded["attention_mask"].expand(n, -1), (labels >= 0).long()], dim=1)
                logits = self.model(input_ids=ids, attention_mask=mask).logits[:, prompt_ids.shape[1] - 1:-1]
            else:
                assert encoder_states is not None
                logits = self._t5_logits(encoder_states, encoded["attention_mask"], labels)
            logp = torch.log_softmax(logits.float(), dim=-1)
            picked = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            out[start:start + n] = (picked * (labels >= 0)).sum(-1).double().cpu().numpy()
        return out

    def _t5_logits(self, encoder_states: torch.Tensor, attention_mask: torch.Tensor,
                   labels: torch.Tensor) -> torch.Tensor:
        """Teacher-forced decoder logits (n, L, V) of n IDs after one encoded prompt. The first step
        runs once with batch 1; its cache (cross-attention keys and values of the prompt, computed
        once) is then broadcast to the n candidates, which is ~5x faster than expanding the prompt."""
        from transformers.modeling_outputs import BaseModelOutput

        n = labels.shape[0]
        start = torch.full((1, 1), self.model.config.decoder_start_token_id, device=self.device)
        first = self.model(encoder_outputs=BaseModelOutput(encoder_states), attention_mask=attention_mask,
                           decoder_input_ids=start, use_cache=True)
        if labels.shape[1] == 1:
            return first.logits.expand(n, -1, -1)
        cache = first.cache if hasattr(first, "cache") else first.past_key_values  # renamed in transformers 5
        cross = getattr(getattr(cache, "cross_attention_cache", None), "layers", None)
        if cross and all(hasattr(layer, "keys") for layer in cross):
            for layer in cross:  # views, not copies: every candidate reads the same prompt keys
                layer.keys = layer.keys.expand(n, -1, -1, -1)
                layer.values = layer.values.expand(n, -1, -1, -1)
            for layer in cache.self_attention_cache.layers:
                layer.keys = layer.keys.expand(n, -1, -1, -1).contiguous()
                layer.values = layer.values.expand(n, -1, -1, -1).contiguous()
        else:  # another cache layout: the public (copying) way
            cache.batch_repeat_interleave(n)
        rest = labels[:, :-1].masked_fill(labels[:, :-1] < 0, self.tokenizer.pad_token_id)
        later = self.model(encoder_outputs=BaseModelOutput(encoder_states.expand(n, -1, -1)),
                           attention_mask=attention_mask.expand(n, -1), decoder_input_ids=rest, cache=cache)
        return torch.cat([first.logits.expand(n, -1, -1), later.logits], dim=1)

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], num_beams: int, constrained: bool = True
                 ) -> list[list[tuple[str | None, float]]]:
        """Top-``num_beams`` beams per prompt as (item or None when the output names no item, score)."""
        self.model.eval()
        encoded = self._encode(prompts)
        skip = encoded["input_ids"].shape[1] if self.causal else 1
        kwargs: dict[str, Any] = {}
        if constrained:
            kwargs["prefix_allowed_tokens_fn"] = self.trie.prefix_allowed_tokens_fn(skip)
        result = self.model.generate(
            **encoded, num_beams=num_beams, num_return_sequences=num_beams, max_new_tokens=self.max_id_tokens + 1,
            do_sample=False, length_penalty=0.0, early_stopping=True, output_scores=True,
            return_dict_in_generate=True, pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.trie.eos_token_id, **kwargs)
        sequences = result.sequences[:, skip:].tolist()
        scores = result.sequences_scores.tolist()
        out: list[list[tuple[str | None, float]]] = []
        for p in range(len(prompts)):
            rows = range(p * num_beams, (p + 1) * num_beams)
            out.append([(self._named_item(sequences[r]), float(scores[r])) for r in rows])
        return out

    def _named_item(self, ids: list[int]) -> str | None:
        """The item a generated sequence names, or None (not an ID, or unfinished)."""
        pad = self.tokenizer.pad_token_id
        ids = [t for t in ids if t != pad or pad == self.trie.eos_token_id]
        if self.trie.eos_token_id not in ids:
            return None
        return self.trie.item_for_ids(ids)
