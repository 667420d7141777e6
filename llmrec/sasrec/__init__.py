"""SASRec (Kang & McAuley, ICDM 2018): causal self-attention over item-ID embeddings, the ID-based
baseline for LEARN. The vocabulary comes from training events only; cold items score lowest."""

from llmrec.sasrec.config import SASRecConfig
from llmrec.sasrec.data import ItemVocabulary, SASRecCollator, SASRecSequences
from llmrec.sasrec.model import SASRec
from llmrec.sasrec.scorer import SASRecScorer
from llmrec.sasrec.train import train_sasrec

__all__ = ["ItemVocabulary", "SASRec", "SASRecCollator", "SASRecConfig", "SASRecScorer", "SASRecSequences",
           "train_sasrec"]
