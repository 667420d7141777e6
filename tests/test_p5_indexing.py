"""P5 item indexing (llmrec.p5.indexing) and the constrained-decoding trie (llmrec.p5.trie).

The synthetic data set is sparse and long-tailed like the Amazon sets P5 was run on: 120 users,
a 2500-item catalogue in 8 genres (ids random, so id order says nothing), each user drawing 5-11
items mostly from two favourite genres, in time order. On it the original P5 numbering leaks: a
user's test item is numbered right after their last history item for most users.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmrec.data.schema import ITEM, TIME, USER, Dataset
from llmrec.data.splits import Split, leave_one_out_split, temporal_split
from llmrec.p5 import (
    INDEXES,
    CollaborativeIndex,
    IdTrie,
    ItemIndex,
    LeakyOriginalIndex,
    RandomIndex,
    SemanticIndex,
    SequentialIndex,
    add_id_tokens,
    catalogue,
    make_index,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N_GENRES = 8


def synthetic(n_users: int = 120, n_items: int = 2500, seed: int = 0, favourites: int = 2
              ) -> tuple[Dataset, np.ndarray, list[str]]:
    """Interactions, a catalogue with titles, and genre-clustered unit item embeddings (16-d)."""
    rng = np.random.default_rng(seed)
    ids = [f"i{x}" for x in rng.choice(100_000, n_items, replace=False)]
    genre = rng.integers(0, N_GENRES, n_items)
    popularity = 1.0 / (1 + np.arange(n_items)) ** 0.3
    rng.shuffle(popularity)
    rows = []
    for u in range(n_users):
        weight = popularity * np.where(np.isin(genre, rng.choice(N_GENRES, favourites, replace=False)), 1.0, 0.05)
        chosen = rng.choice(n_items, int(rng.integers(5, 12)), replace=False, p=weight / weight.sum())
        start = int(rng.integers(0, 10**6))
        rows += [(f"u{u}", ids[i], start + 1000 * k + int(rng.integers(0, 500))) for k, i in enumerate(chosen)]
    items = pd.DataFrame({ITEM: ids, "title": [f"genre{g} film {k}" for k, g in enumerate(genre)],
                          "genres": [f"genre{g}" for g in genre]})
    vectors = rng.normal(size=(N_GENRES, 16))[genre] + 0.3 * rng.normal(size=(n_items, 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return Dataset("synthetic", pd.DataFrame(rows, columns=[USER, ITEM, TIME]), items), vectors, ids


@pytest.fixture(scope="module")
def data():
    return synthetic()


@pytest.fixture(scope="module")
def loo(data) -> Split:
    return leave_one_out_split(data[0])


@pytest.fixture(scope="module")
def temporal(data) -> Split:
    return temporal_split(data[0], test_ratio=0.3)


def scheme(name: str, data) -> ItemIndex:
    """Each scheme at a size that suits 2500 items."""
    _, vectors, ids = data
    options = {"collaborative": {"n_clusters": 8, "depth": 3, "leaf_size": 16},
               "semantic": {"levels": 3, "codebook_size": 16, "embeddings": vectors, "embedding_ids": ids},
               "random": {"seed": 3}}.get(name, {})
    return make_index(name, **options)


NON_LEAKY = ["random", "sequential", "collaborative", "semantic"]


def successor(index: ItemIndex, item: str) -> str | None:
    """The item whose ID is "this ID + 1": the next number, or for tree IDs the next last token."""
    if hasattr(index, "number"):
        return index.item_at(index.number(item) + 1)
    tokens = list(index.tokens(item))
    head, n = tokens[-1][:-1].rsplit("_", 1)
    tokens[-1] = f"{head}_{int(n) + 1}>"
    return index.item_for(tokens)


# --- every scheme: a unique, invertible, prefix-free ID for every item -----------------------

@pytest.mark.parametrize("split_name", ["loo", "temporal"])
@pytest.mark.parametrize("name", [*NON_LEAKY, "original"])
def test_every_item_has_a_unique_invertible_id(name, split_name, data, request):
    split = request.getfixturevalue(split_name)
    index = scheme(name, data).fit(split)
    items = catalogue(split)
    assert sorted(index.items()) == items and len(index) == len(items) == 2500
    ids = {item: index.tokens(item) for item in items}
    assert len(set(ids.values())) == len(items)
    assert all(index.item_for(tokens) == item for item, tokens in ids.items())
    # Prefix-free: no complete ID begins another, so a finished ID can only be followed by EOS.
    prefixes = {tokens[:k] for tokens in ids.values() for k in range(len(tokens))}
    assert not prefixes & set(ids.values())
    vocabulary = set(index.vocabulary)
    assert {t for tokens in ids.values() for t in tokens} == vocabulary
    some = ids[items[0]]
    for invalid in [(), some[:-1], (*some, some[-1]), ("<nope_1>",), (some[-1],) * 9]:
        assert index.item_for(invalid) is None
    with pytest.raises(KeyError, match="not in the"):
        index.tokens("no-such-item")


def test_vocabularies_never_clash_and_only_the_original_is_leaky(loo, data):
    vocabularies = {name: set(scheme(name, data).fit(loo).vocabulary) for name in INDEXES}
    for a in vocabularies:
        for b in vocabularies:
            assert a == b or not vocabularies[a] & vocabularies[b], (a, b)
    assert [cls.leaky for cls in INDEXES.values()] == [False, False, False, False, True]
    assert LeakyOriginalIndex.name.endswith("(leaky)") and "measure" in (LeakyOriginalIndex.__doc__ or "")
    assert isinstance(make_index("original (leaky)"), LeakyOriginalIndex)


def test_numbered_schemes_digits_or_atomic_tokens(loo):
    digits = SequentialIndex().fit(loo)
    atomic = SequentialIndex(digits=False).fit(loo)
    item = digits.item_at(57)
    assert item is not None
    assert digits.tokens(item) == ("<seq_0>", "<seq_0>", "<seq_5>", "<seq_7>") and len(digits.vocabulary) == 10
    assert atomic.tokens(item) == ("<seq_57>",) and len(atomic.vocabulary) == 2500
    assert digits.number(item) == atomic.number(item) == 57 and digits.item_at(0) is None
    # Random numbers depend on the seed alone.
    assert RandomIndex(seed=1).fit(loo).tokens(item) == RandomIndex(seed=1).fit(loo).tokens(item)
    assert [RandomIndex(seed=1).fit(loo).number(i) for i in digits.items()[:20]] != list(range(1, 21))


def test_make_index_rejects_unknown_names_and_options():
    assert isinstance(make_index("collaborative", n_clusters=4, leaf_size=4), CollaborativeIndex)
    with pytest.raises(ValueError, match="unknown item index"):
        make_index("tiger")
    with pytest.raises(ValueError, match="no option 'clusters'"):
        make_index("collaborative", clusters=4)
    with pytest.raises(ValueError, match="leaf_size >= n_clusters"):
        CollaborativeIndex(n_clusters=8, leaf_size=4)
    with pytest.raises(RuntimeError, match="not fitted"):
        SequentialIndex().tokens("i1")


# --- the leak, and that no other scheme reads the evaluated part -----------------------------

def test_original_numbering_leaks_the_test_item_and_the_others_do_not(loo, data):
    cases = loo.eval_set("test")
    assert len(cases) == 120

    def hit_rate(index: ItemIndex) -> float:
        return float(np.mean([successor(index, h[-1]) == t[0] for h, t in zip(cases.histories, cases.targets)]))

    leaky = hit_rate(LeakyOriginalIndex().fit(loo))
    assert leaky > 0.5, leaky
    for name in NON_LEAKY:
        rate = hit_rate(scheme(name, data).fit(loo))
        assert rate < 0.1, (name, rate)


def _without_test(split: Split, seed: int) -> tuple[Split, Split]:
    """The split with its test events' items replaced by random catalogue items (in the data set
    too), and with no test events at all."""
    known = split.known("test").drop(columns="event_seq")
    rng = np.random.default_rng(seed)
    shuffled = split.test.copy()
    shuffled[ITEM] = rng.choice(split.dataset.items.index.to_numpy(), len(shuffled))
    out = []
    for test in (shuffled, split.test.iloc[0:0]):
        events = pd.concat([known, test.drop(columns="event_seq")], ignore_index=True)
        dataset = Dataset(split.dataset.name, events, split.dataset.items.reset_index())
        out.append(Split(split.name, dataset, split.train, split.valid, test.reset_index(drop=True),
                         group_targets=split.group_targets))
    return out[0], out[1]


@pytest.mark.parametrize("split_name", ["loo", "temporal"])
def test_no_scheme_but_the_original_reads_the_test_part(split_name, data, request):
    split = request.getfixturevalue(split_name)
    shuffled, removed = _without_test(split, seed=1)
    for name in NON_LEAKY:
        index = scheme(name, data).fit(split)
        ids = {i: index.tokens(i) for i in catalogue(split)}
        for other in (shuffled, removed):
            again = scheme(name, data).fit(other)
            assert {i: again.tokens(i) for i in ids} == ids, name
    # The check can see a leak: the original numbering moves when the test events change.
    original = LeakyOriginalIndex().fit(split)
    moved = LeakyOriginalIndex().fit(shuffled)
    assert any(original.tokens(i) != moved.tokens(i) for i in catalogue(split))


# --- collaborative and semantic specifics ---------------------------------------------------

def test_collaborative_clusters_follow_co_occurrence_and_cold_items_branch_off(temporal, data):
    index = scheme("collaborative", data).fit(temporal)
    warm = set(temporal.known("test")[ITEM])
    cold = set(catalogue(temporal)) - warm
    assert temporal.cold_items("test") <= cold
    assert all(index.tokens(i)[0] == "<cf1_cold>" for i in cold)
    assert all(index.tokens(i)[0] != "<cf1_cold>" for i in warm)
    assert max(len(index.tokens(i)) for i in index.items()) <= 3 + 1
    # Denser data (600 users, 400 items): the first-level clusters are the genres.
    dense, _, _ = synthetic(n_users=600, n_items=400, seed=1)
    split = leave_one_out_split(dense)
    clustered = CollaborativeIndex(n_clusters=N_GENRES, depth=2, leaf_size=16).fit(split)
    genre = dense.items["genres"]
    top = pd.DataFrame({"cluster": [clustered.tokens(i)[0] for i in split.known("test")[ITEM].unique()],
                        "genre": genre.reindex(split.known("test")[ITEM].unique()).to_numpy()})
    purity = top.groupby("cluster")["genre"].agg(lambda g: g.value_counts().iloc[0]).sum() / len(top)
    assert purity > 0.8, purity


def test_semantic_ids_share_prefixes_for_similar_items_and_resolve_collisions(temporal, data):
    _, vectors, ids = data
    vectors = vectors.copy()
    a, b, c = sorted(ids[:3])
    vectors[ids.index(b)] = vectors[ids.index(a)] + 1e-7  # near-identical
    vectors[ids.index(c)] = vectors[ids.index(a)]         # identical
    index = SemanticIndex(levels=3, codebook_size=16, embeddings=vectors, embedding_ids=ids).fit(temporal)
    ta, tb, tc = (index.tokens(i) for i in (a, b, c))
    assert ta[:3] == tb[:3] == tc[:3]
    # The collision level tells them apart, numbered in item-id order (other items may share the code).
    clashes = [int(t[3].split("_")[1][:-1]) for t in (ta, tb, tc)]
    assert clashes == sorted(set(clashes))
    assert {len(index.tokens(i)) for i in index.items()} == {4}
    assert all(i in index for i in temporal.cold_items("test"))
    # The first code groups items of one genre (the embeddings' clusters).
    genre = data[0].items["genres"].reindex(ids)
    first = [index.tokens(i)[0] for i in ids]
    purity = genre.groupby(first).agg(lambda g: g.value_counts().iloc[0]).sum() / len(ids)
    assert purity > 0.9, purity
    with pytest.raises(ValueError, match="have no embedding"):
        SemanticIndex(embeddings=vectors[:10], embedding_ids=ids[:10]).fit(temporal)


class WordHashEncoder:
    """A stand-in sentence encoder: a bag of hashed words, normalised (same text, same vector)."""

    model_id = "word-hash"
    dim = 32

    def encode(self, texts, batch_size: int = 64, show_progress: bool = True) -> np.ndarray:
        out = np.zeros((len(texts), self.dim))
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, sum(map(ord, word)) % self.dim] += 1.0
        return (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)).astype(np.float32)


def test_semantic_ids_from_item_text_cover_cold_items(temporal):
    index = SemanticIndex(levels=2, codebook_size=8, encoder=WordHashEncoder(), template="{{ genres }}")
    index.fit(temporal)
    items = temporal.dataset.items
    cold = sorted(temporal.cold_items("test"))
    assert cold and all(i in index for i in cold)
    # Only genres are rendered: same genre, same code, told apart by the collision level alone.
    for item in cold[:20]:
        peer = items.index[(items["genres"] == items.loc[item, "genres"]) & (items.index != item)][0]
        assert index.tokens(item)[:2] == index.tokens(peer)[:2] and index.tokens(item) != index.tokens(peer)


# --- the trie and constrained generation ----------------------------------------------------

@pytest.fixture(scope="module")
def fitted(loo, data) -> dict[str, ItemIndex]:
    return {name: scheme(name, data).fit(loo) for name in INDEXES}


@pytest.fixture(scope="module")
def tokenizer(fitted):
    from llmrec.llm.testing import train_tiny_tokenizer

    tok = train_tiny_tokenizer()
    for index in fitted.values():
        assert add_id_tokens(tok, index) == len(index.vocabulary)  # vocabularies are disjoint
    return tok


@pytest.mark.parametrize("name", list(INDEXES))
def test_trie_holds_exactly_the_valid_ids(name, fitted, tokenizer):
    index = fitted[name]
    trie = IdTrie.from_index(index, tokenizer)
    eos = tokenizer.eos_token_id
    paths = dict(trie.paths())
    assert len(trie) == len(paths) == len(index)
    assert {item: trie.token_ids(item) for item in index.items()} == {item: p for p, item in paths.items()}
    for path, item in paths.items():
        assert index.item_for(tokenizer.convert_ids_to_tokens(list(path))) == item
        assert trie.allowed(path) == [eos]  # a complete ID can only end
        assert trie.item_for_ids([*path, eos, 0, 0]) == item
        assert all(path[k] in trie.allowed(path[:k]) for k in range(len(path)))
    first = {index.tokens(i)[0] for i in index.items()}
    assert sorted(trie.allowed([])) == sorted(tokenizer.convert_tokens_to_ids(sorted(first)))
    assert trie.allowed([eos]) == [] and trie.item_for_ids(list(next(iter(paths)))[:-1]) is None
    fn = trie.prefix_allowed_tokens_fn(skip=3)
    import torch

    some = next(iter(paths))
    assert fn(0, torch.tensor([7, 7, 7, *some[:-1]])) == trie.allowed(some[:-1])
    assert fn(0, torch.tensor([7, 7, 7, *some, eos, 0])) == [eos]  # finished: only EOS, never an empty list


def test_trie_needs_the_id_tokens_in_the_tokenizer(fitted):
    from llmrec.llm.testing import train_tiny_tokenizer

    with pytest.raises(ValueError, match="add_id_tokens"):
        IdTrie.from_index(fitted["sequential"], train_tiny_tokenizer())


def _check_beams(trie: IdTrie, generated, n_prompts: int, beams: int) -> None:
    decoded = [trie.item_for_ids(row) for row in generated.tolist()]
    assert len(decoded) == n_prompts * beams and None not in decoded
    for p in range(n_prompts):
        assert len(set(decoded[p * beams:(p + 1) * beams])) == beams  # distinct paths name distinct items


@pytest.mark.parametrize("name", list(INDEXES))
def test_constrained_beam_search_decoder_only_returns_only_valid_ids(name, fitted, tokenizer):
    import torch

    from llmrec.llm.testing import tiny_llama

    index = fitted[name]
    trie = IdTrie.from_index(index, tokenizer)
    model = tiny_llama(len(tokenizer), seed=1)
    model.resize_token_embeddings(len(tokenizer))
    tokenizer.padding_side = "left"  # every prompt ends at the same column: skip = its width
    batch = tokenizer(["user watched The Matrix and Alien", "Frozen"], return_tensors="pt", padding=True)
    longest = max(len(index.tokens(i)) for i in index.items())
    width = batch["input_ids"].shape[1]
    with torch.no_grad():
        out = model.generate(**batch, prefix_allowed_tokens_fn=trie.prefix_allowed_tokens_fn(skip=width),
                             num_beams=4, num_return_sequences=4, max_new_tokens=longest + 1, do_sample=False,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    _check_beams(trie, out[:, width:], n_prompts=2, beams=4)


def test_constrained_beam_search_encoder_decoder_returns_only_valid_ids(fitted, tokenizer):
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    index = fitted["collaborative"]
    trie = IdTrie.from_index(index, tokenizer)
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=1, num_decoder_layers=1,
                      num_heads=4, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                      decoder_start_token_id=tokenizer.pad_token_id)
    model = T5ForConditionalGeneration(config).eval()
    batch = tokenizer(["user watched Heat", "Jaws and Vertigo"], return_tensors="pt", padding=True)
    longest = max(len(index.tokens(i)) for i in index.items())
    with torch.no_grad():
        out = model.generate(**batch, prefix_allowed_tokens_fn=trie.prefix_allowed_tokens_fn(skip=1), num_beams=4,
                             num_return_sequences=4, max_new_tokens=longest + 1, do_sample=False)
    assert (out[:, 0] == tokenizer.pad_token_id).all()  # the decoder_start token that skip=1 passes over
    _check_beams(trie, out[:, 1:], n_prompts=2, beams=4)
