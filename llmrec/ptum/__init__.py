"""PTUM (Wu et al., Findings of EMNLP 2020): a user model pretrained on unlabelled behaviour
sequences by masked behaviour prediction and next-K behaviour prediction, then fine-tuned on tasks
with few labels (user demographics) or used as a next-item scorer. The vocabulary comes from the
events known before the evaluated part; cold items score lowest."""

from llmrec.ptum.config import PTUMConfig
from llmrec.ptum.data import ItemVocabulary, PTUMCollator, PTUMSequences, demographic_data
from llmrec.ptum.model import PTUM, PTUMClassifier
from llmrec.ptum.scorer import PTUMScorer
from llmrec.ptum.train import finetune_next_item, finetune_ptum, new_encoder, pretrain_ptum

__all__ = ["PTUM", "ItemVocabulary", "PTUMClassifier", "PTUMCollator", "PTUMConfig", "PTUMScorer", "PTUMSequences",
           "demographic_data", "finetune_next_item", "finetune_ptum", "new_encoder", "pretrain_ptum"]
