"""Next-title LM reranker: LoRA-tune a causal LM to continue a user's history with the next item's
title; score each candidate by its title's log-likelihood. ``scorer.py`` registers ``nexttitle``;
see ``config.py`` for the settings."""
