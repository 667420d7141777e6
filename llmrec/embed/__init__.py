"""Item embeddings: sentence encoders, a crash-safe embedding cache, and nearest-neighbour indexes."""

from llmrec.embed.cache import DEFAULT_CACHE_DIR, EmbeddingCache, embed_with_cache, text_key
from llmrec.embed.encoder import (
    DEFAULT_MODEL,
    Encoder,
    EncoderLoadError,
    TextEncoder,
    folder_fingerprint,
    load_sentence_encoder,
)
from llmrec.embed.files import (
    export_embeddings,
    join_columns,
    read_embedding_folder,
    read_item_table,
    render_item_texts,
    write_embedding_folder,
)
from llmrec.embed.index import BruteForceIndex, FaissIndex, make_index

__all__ = [
    "DEFAULT_CACHE_DIR",
    "DEFAULT_MODEL",
    "BruteForceIndex",
    "EmbeddingCache",
    "Encoder",
    "EncoderLoadError",
    "FaissIndex",
    "TextEncoder",
    "embed_with_cache",
    "export_embeddings",
    "folder_fingerprint",
    "join_columns",
    "load_sentence_encoder",
    "make_index",
    "read_embedding_folder",
    "read_item_table",
    "render_item_texts",
    "text_key",
    "write_embedding_folder",
]
