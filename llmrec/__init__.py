"""llmrec: large language models for recommender systems, on one data layer and one honest evaluator."""

__version__ = "0.1.0"
