"""Brute-force and FAISS indexes agree (exact kinds) and approximate ones keep high recall."""

from __future__ import annotations

import numpy as np
import pytest

from llmrec.embed import BruteForceIndex, FaissIndex, load_sentence_encoder, make_index, read_item_table

# Tiny models spend their time in thread hand-offs: one torch thread (conftest) is far faster.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def assert_same_topk(a, b, atol=1e-5):
    (ids_a, scores_a), (ids_b, scores_b) = a, b
    np.testing.assert_allclose(scores_a, scores_b, atol=atol)
    # Equal ids wherever the score is not tied with a neighbour (ties may be ordered differently).
    tied = np.zeros_like(scores_a, dtype=bool)
    close = np.isclose(scores_a[:, 1:], scores_a[:, :-1], atol=atol)
    tied[:, 1:] |= close
    tied[:, :-1] |= close
    # Items tied with the last kept score may swap with one just outside the top k.
    tied |= np.isclose(scores_a, scores_a[:, -1:], atol=atol)
    assert (ids_a[~tied] == ids_b[~tied]).all()


def exact_topk(vectors, ids, queries, k):
    scores = queries @ vectors.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.asarray(ids, dtype=object)[order], np.take_along_axis(scores, order, axis=1)


def test_brute_force_is_exact_and_sorted():
    rng = np.random.default_rng(0)
    vectors, queries = unit_rows(rng, 500, 24), unit_rows(rng, 30, 24)
    ids = [f"item{i}" for i in range(500)]
    index = BruteForceIndex(query_batch=7)  # several query batches
    index.add(ids[:200], vectors[:200])
    index.add(ids[200:], vectors[200:])
    found = index.search(queries, 10)
    assert found[0].shape == (30, 10) and found[1].dtype == np.float32
    assert (np.diff(found[1], axis=1) <= 0).all()
    assert_same_topk(found, exact_topk(vectors, ids, queries, 10))


def test_k_is_capped_and_ties_follow_insertion_order():
    index = BruteForceIndex()
    same = np.tile(np.array([[1.0, 0.0]], dtype=np.float32), (3, 1))
    index.add(["c", "a", "b"], same)
    ids, scores = index.search(np.array([1.0, 0.0]), k=10)
    assert ids.tolist() == [["c", "a", "b"]] and scores.shape == (1, 3)


def test_faiss_flat_matches_brute_force_on_random_data():
    rng = np.random.default_rng(1)
    vectors, queries = unit_rows(rng, 2000, 64), unit_rows(rng, 50, 64)
    ids = [str(i) for i in range(2000)]
    brute, flat = BruteForceIndex(64), FaissIndex(64, "flat")
    for index in (brute, flat):
        index.add(ids, vectors)
    assert len(brute) == len(flat) == 2000
    assert_same_topk(brute.search(queries, 20), flat.search(queries, 20))


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_faiss_indexes_keep_recall(kind):
    rng = np.random.default_rng(2)
    vectors, queries = unit_rows(rng, 3000, 32), unit_rows(rng, 100, 32)
    ids = [str(i) for i in range(3000)]
    index = make_index(kind, 32, **({"nprobe": 32} if kind == "ivf" else {}))
    index.add(ids, vectors)
    found, _ = index.search(queries, 10)
    truth, _ = exact_topk(vectors, ids, queries, 10)
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
    assert recall >= 0.9, f"{kind} recall@10 {recall:.3f}"


def test_ivf_needs_enough_training_vectors_and_indexes_validate_input():
    with pytest.raises(ValueError, match="IVF with nlist=64 needs at least 64 vectors"):
        FaissIndex(8, "ivf", nlist=64).add(["a", "b"], np.eye(2, 8, dtype=np.float32))
    with pytest.raises(ValueError, match="unknown faiss index kind"):
        FaissIndex(8, "lsh")  # type: ignore[arg-type]
    index = BruteForceIndex(8)
    with pytest.raises(ValueError, match="dimension 4, the index holds dimension 8"):
        index.add(["a"], np.ones((1, 4)))
    with pytest.raises(ValueError, match="NaN"):
        index.add(["a"], np.full((1, 8), np.nan))
    with pytest.raises(ValueError, match="2 ids for 1 vectors"):
        FaissIndex(8).add(["a", "b"], np.ones((1, 8)))


def test_faiss_flat_matches_brute_force_on_real_item_embeddings(require_data, tiny_sentence_model):
    """Real Amazon Scientific item texts through an encoder: dense, clustered, near-duplicate rows."""
    items = read_item_table(require_data("amazon-scientific", "Scientific.text"), id_column="item_id:token",
                            file_format="tsv").iloc[:800]
    encoder = load_sentence_encoder(str(tiny_sentence_model), device="cpu")
    vectors = encoder.encode(list(items["text:token_seq"]), show_progress=False)
    ids = list(items.index)
    brute, flat = BruteForceIndex(), FaissIndex(encoder.dim)
    brute.add(ids, vectors)
    flat.add(ids, vectors)
    queries = vectors[::40]
    found = brute.search(queries, 10)
    assert_same_topk(found, flat.search(queries, 10), atol=1e-4)
    assert (found[0][:, 0] == np.asarray(ids, dtype=object)[::40]).mean() >= 0.9  # an item finds itself


@pytest.mark.slow
def test_faiss_flat_matches_brute_force_on_minilm_embeddings(require_data):
    items = read_item_table(require_data("amazon-scientific", "Scientific.text"), id_column="item_id:token",
                            file_format="tsv").iloc[:1500]
    encoder = load_sentence_encoder()
    vectors = encoder.encode(list(items["text:token_seq"]), show_progress=False)
    brute, flat = BruteForceIndex(), FaissIndex(encoder.dim)
    brute.add(list(items.index), vectors)
    flat.add(list(items.index), vectors)
    assert_same_topk(brute.search(vectors[::25], 20), flat.search(vectors[::25], 20), atol=1e-4)
