"""Tiny, offline, random language models for tests (of this layer and of every LLM method).

A real byte-level BPE tokenizer is trained in about a second on a small movie-flavoured corpus,
and a 2-layer Llama with random weights is built from a config: no weights are downloaded, and
everything a method does with a real model (chat template, generation, scoring) runs for real.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

CHATML_TEMPLATE = (
    "{% for m in messages %}"
    "{{'<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{'<|im_start|>assistant\\n'}}{% endif %}"
)

DEFAULT_WORDS = (
    "The Matrix",
    "Interstellar",
    "Frozen",
    "Predator",
    "Notting Hill",
    "Pretty Woman",
    "Alien",
    "Toy Story",
    "Heat",
    "Casablanca",
    "Vertigo",
    "Jaws",
    "user watched",
    "recommend the next movie",
    "Answer:",
    "Yes",
    "No",
    "A",
    "B",
    "C",
    "D",
    "rank the candidates",
    "1.",
    "2.",
    "3.",
)


def train_tiny_tokenizer(
    words: Sequence[str] = DEFAULT_WORDS, chat_template: str | None = CHATML_TEMPLATE, vocab_size: int = 400
) -> Any:
    """A byte-level BPE tokenizer (any text encodes) with ChatML special tokens; template optional."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [f"{a} and {b}. {c}" for a in words for b in words for c in words[:3]]
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    raw.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tokenizer.chat_template = chat_template
    return tokenizer


def tiny_llama(vocab_size: int, seed: int = 0, head_scale: float = 20.0) -> Any:
    """A 2-layer random Llama (hidden 32). ``head_scale`` sharpens its otherwise near-uniform outputs."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(seed)
    config = AutoConfig.for_model(
        "llama",
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        vocab_size=vocab_size,
        max_position_embeddings=1024,
        eos_token_id=2,
        pad_token_id=0,
        bos_token_id=None,
    )
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        model.lm_head.weight.mul_(head_scale)
    return model.eval()


def tiny_lm(chat: bool = True, seed: int = 0, **kwargs: Any):
    """An ``HFCausalLM`` over a tiny random Llama; ``chat=False`` gives a base model (no template)."""
    from llmrec.llm.hf import HFCausalLM

    tokenizer = train_tiny_tokenizer(chat_template=CHATML_TEMPLATE if chat else None)
    kwargs.setdefault("show_progress", False)
    return HFCausalLM(tiny_llama(len(tokenizer), seed=seed), tokenizer, name=f"tiny-llama-{seed}", **kwargs)
