"""Rewards for training loops: score completions in order, on time, once, and store them."""

from app.labeling.rewards.inputs import RewardItemIn, RewardRequest, ScorerIn
from app.labeling.rewards.scorers import Scored
from app.labeling.rewards.service import ItemOutcome, RewardBatch, RewardService

__all__ = [
    "ItemOutcome",
    "RewardBatch",
    "RewardItemIn",
    "RewardRequest",
    "RewardService",
    "Scored",
    "ScorerIn",
]
