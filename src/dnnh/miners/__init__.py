"""Triplet selection: the paper's random triplets, in-batch miners, class-balanced batches."""

from dnnh.miners.balanced_batches import ClassBalancedBatches
from dnnh.miners.batch_miner import STRATEGIES, BatchTripletMiner
from dnnh.miners.random_triplets import RandomTripletBatches, RandomTripletSampler
from dnnh.similarity import members_by_label, relevance

__all__ = ["BatchTripletMiner", "ClassBalancedBatches", "RandomTripletBatches", "RandomTripletSampler", "STRATEGIES",
           "members_by_label", "relevance"]
