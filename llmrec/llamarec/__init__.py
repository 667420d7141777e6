"""LlamaRec-style fine-tuned reranker: lettered candidates, first-token letter logits, LoRA tuning on
training users' next items. ``scorer.py`` registers ``llamarec``; see ``config.py`` for the settings."""
