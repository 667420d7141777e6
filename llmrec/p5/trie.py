"""A trie of valid item IDs in tokenizer token ids, for constrained decoding.

A generative recommender must emit an ID that names an item. ``IdTrie.prefix_allowed_tokens_fn``
plugs into ``transformers``' ``generate(prefix_allowed_tokens_fn=...)``: at every step only tokens
that continue some valid ID are allowed, and EOS once an ID is complete, so every finished beam
decodes to an item. transformers calls the function as ``fn(batch_id, sequence)`` with the whole
running sequence of one beam (for decoder-only models the prompt too; for encoder-decoder models the
decoder input, which starts with ``decoder_start_token_id``), hence the ``skip`` leading tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from llmrec.p5.indexing import ItemIndex


class _Node:
    __slots__ = ("children", "item")

    def __init__(self) -> None:
        self.children: dict[int, _Node] = {}
        self.item: str | None = None


def add_id_tokens(tokenizer: Any, index: ItemIndex) -> int:
    """Add the index's ID tokens to ``tokenizer`` (one token each); returns how many were new. The
    model's embeddings must then be resized: ``model.resize_token_embeddings(len(tokenizer))``."""
    return int(tokenizer.add_tokens(index.vocabulary))


class IdTrie:
    """Valid item IDs as token-id sequences; ``allowed(prefix)`` gives the tokens that may follow."""

    def __init__(self, sequences: Mapping[str, Sequence[int]], eos_token_id: int):
        self.eos_token_id = int(eos_token_id)
        self._root = _Node()
        self._ids: dict[str, tuple[int, ...]] = {}
        for item, ids in sequences.items():
            path = tuple(int(i) for i in ids)
            if not path or self.eos_token_id in path:
                raise ValueError(f"item {item!r}: an ID must be a non-empty token sequence without EOS, got {path}")
            node = self._root
            for token in path:
                node = node.children.setdefault(token, _Node())
            if node.item is not None:
                raise ValueError(f"items {node.item!r} and {item!r} map to the same token ids {path}")
            node.item = item
            self._ids[item] = path

    @classmethod
    def from_index(cls, index: ItemIndex, tokenizer: Any, eos_token_id: int | None = None) -> IdTrie:
        """The trie of every item of a fitted ``index``; each ID token must be one token of
        ``tokenizer`` (see :func:`add_id_tokens`), so IDs never depend on how text is split."""
        vocab = tokenizer.get_vocab()
        missing = [t for t in index.vocabulary if t not in vocab]
        if missing:
            raise ValueError(f"{len(missing)} ID tokens of the {index.name} index are not tokens of the tokenizer "
                             f"(e.g. {missing[0]!r}): call add_id_tokens(tokenizer, index), then "
                             "model.resize_token_embeddings(len(tokenizer))")
        eos = tokenizer.eos_token_id if eos_token_id is None else eos_token_id
        if eos is None:
            raise ValueError("the tokenizer has no eos_token_id; pass eos_token_id")
        return cls({item: [vocab[t] for t in index.tokens(item)] for item in index.items()}, int(eos))

    def __len__(self) -> int:
        return len(self._ids)

    def token_ids(self, item_id: str) -> tuple[int, ...]:
        """The item's ID in token ids (without EOS): the target a model is trained to emit."""
        return self._ids[item_id]

    def _walk(self, prefix: Sequence[int]) -> _Node | None:
        node: _Node | None = self._root
        for token in prefix:
            node = node.children.get(int(token)) if node is not None else None
        return node

    def allowed(self, prefix_token_ids: Sequence[int]) -> list[int]:
        """Token ids that may follow ``prefix_token_ids`` (the generated ID so far): the children in
        the trie, plus EOS where the prefix is a complete ID; empty when no ID starts so."""
        node = self._walk(prefix_token_ids)
        if node is None:
            return []
        out = list(node.children)
        if node.item is not None:
            out.append(self.eos_token_id)
        return out

    def item_for_ids(self, token_ids: Sequence[int]) -> str | None:
        """The item a generated sequence names (read up to its first EOS), or None."""
        ids = [int(t) for t in token_ids]
        if self.eos_token_id in ids:
            ids = ids[: ids.index(self.eos_token_id)]
        node = self._walk(ids)
        return node.item if node is not None else None

    def paths(self) -> Iterator[tuple[tuple[int, ...], str]]:
        """Every (token ids, item) path from the root to a complete ID, depth first."""
        stack: list[tuple[tuple[int, ...], _Node]] = [((), self._root)]
        while stack:
            path, node = stack.pop()
            if node.item is not None:
                yield path, node.item
            stack.extend(((*path, t), child) for t, child in node.children.items())

    def prefix_allowed_tokens_fn(self, skip: int) -> Callable[[int, Any], list[int]]:
        """A ``prefix_allowed_tokens_fn`` for ``generate``. ``skip``: leading tokens of each running
        sequence that are not part of the ID: ``input_ids.shape[1]`` for a decoder-only model (the
        padded prompt; pad on the left so every row's prompt ends there), 1 for an encoder-decoder
        model (``decoder_start_token_id``), plus any fixed prefix forced before the ID.

        Once a sequence has ended, or left the trie (which the constraint itself never does), only
        EOS is allowed: transformers rejects an empty list, and such a beam decodes to None.
        """
        if skip < 0:
            raise ValueError(f"skip must be >= 0, got {skip}")

        def allowed_tokens(batch_id: int, sequence: Any) -> list[int]:
            generated = sequence[skip:].tolist() if hasattr(sequence, "tolist") else list(sequence)[skip:]
            return self.allowed(generated) or [self.eos_token_id]

        return allowed_tokens
