"""A two-tower retrieval model with a multi-task rating head (TensorFlow Recommenders' MovieLens
model): user tower over the history, item tower over IDs (+ optional text vectors, so cold items get
one), in-batch softmax with accidental-hit removal and log-popularity correction, an MLP rating
head with MSE, per-task loss weights."""

from llmrec.two_tower.config import TwoTowerConfig
from llmrec.two_tower.data import TwoTowerCollator, TwoTowerEvents
from llmrec.two_tower.model import TwoTower, in_batch_softmax_loss
from llmrec.two_tower.scorer import TwoTowerScorer
from llmrec.two_tower.train import train_two_tower

__all__ = ["TwoTower", "TwoTowerCollator", "TwoTowerConfig", "TwoTowerEvents", "TwoTowerScorer",
           "in_batch_softmax_loss", "train_two_tower"]
