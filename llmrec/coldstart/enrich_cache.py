"""The answer cache of ``llmrec.coldstart.enrich``: model identity, cache key, sqlite store.

An answer depends on the model, the prompt template, whether it was rendered for chat, the item's
cleaned fields and the generation parameters; the key is the sha256 of all of them, so a changed
prompt or model never serves a stale answer. The model identity is more than a display name: the
fingerprint of the model folder's bytes, or of the weights in memory for a model built in code.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llmrec.llm.base import LanguageModel

KEY_VERSION = 1


# --- model identity --------------------------------------------------------------------------------
def _folder_has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").is_file():
        return True
    config = folder / "tokenizer_config.json"
    return config.is_file() and bool(json.loads(config.read_text(encoding="utf-8")).get("chat_template"))


def _weights_fingerprint(module: Any, tokenizer: Any) -> str:
    # A model built in code (tests, a fine-tune in memory) has no folder: hash what it computes with.
    digest = hashlib.sha256(str(getattr(tokenizer, "chat_template", "")).encode())
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def model_identity(model: str, llm: LanguageModel | None = None) -> tuple[str, bool]:
    """``(identity, chat)``: the cache's name for the model and whether it gets chat prompts.

    Without ``llm`` the model named by ``model`` is located (not loaded): a folder gives
    ``name@<folder fingerprint>``. A loaded ``llm`` gives its name plus the fingerprint of its
    folder (``config._name_or_path``), else of its weights, else its server URL.
    """
    from llmrec.embed.encoder import folder_fingerprint

    if llm is None:
        from llmrec.llm.registry import PACKAGED_MODELS, resolve_model

        if model.startswith("http:"):
            return model, True
        location = resolve_model(model)
        if location.folder is None:
            return model, True
        chat = PACKAGED_MODELS[model].chat if model in PACKAGED_MODELS else _folder_has_chat_template(location.folder)
        return f"{model}@{folder_fingerprint(location.folder)}", chat
    chat = bool(getattr(llm, "has_chat_template", True))
    inner = getattr(llm, "model", None)
    folder = str(getattr(getattr(inner, "config", None), "_name_or_path", "") or "")
    if folder and Path(folder).is_dir():
        return f"{llm.name}@{folder_fingerprint(folder)}", chat
    if hasattr(inner, "state_dict"):
        return f"{llm.name}@weights:{_weights_fingerprint(inner, getattr(llm, 'tokenizer', None))}", chat
    base_url = getattr(llm, "base_url", None)
    return (f"{llm.name}@{base_url}" if base_url else llm.name), chat


def cache_key(model_id: str, template_source: str, chat: bool, domain: str, fields: Sequence[Mapping[str, str]],
              params: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of everything an answer depends on."""
    request = {"v": KEY_VERSION, "model": model_id, "template": template_source, "chat": chat, "domain": domain,
               "fields": [[f["name"], f["label"], f["value"]] for f in fields], "params": dict(params)}
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# --- the answer store ------------------------------------------------------------------------------
class AnswerStore:
    """Raw answers by key in sqlite (WAL); ``put_many`` is one transaction, so a batch is all or nothing.

    ``path=None`` keeps answers in memory only (``cache_dir=None``).
    """

    def __init__(self, path: str | Path | None) -> None:
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(":memory:" if path is None else str(path), timeout=60.0)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
                          "item_id TEXT NOT NULL, prompt TEXT NOT NULL, output TEXT NOT NULL, "
                          "completion_tokens INTEGER NOT NULL, created REAL NOT NULL)")
        self.conn.commit()

    def get_many(self, keys: Sequence[str]) -> dict[str, tuple[str, int]]:
        found: dict[str, tuple[str, int]] = {}
        for start in range(0, len(keys), 500):  # sqlite caps the number of bound parameters
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for key, output, tokens in self.conn.execute(
                    f"SELECT key, output, completion_tokens FROM answers WHERE key IN ({marks})", chunk):
                found[key] = (output, int(tokens))
        return found

    def put_many(self, rows: Sequence[tuple[str, str, str, str, str, int]]) -> None:
        """Rows of (key, model, item_id, prompt, output, completion_tokens), committed together."""
        with self.conn:
            self.conn.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?)",
                                  [(*row, time.time()) for row in rows])

    def __len__(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def close(self) -> None:
        self.conn.close()
