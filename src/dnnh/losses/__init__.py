"""Losses on approximate codes. Each is a small class; the training loop picks one by name."""

from dnnh.losses.distances import DISTANCES, DotProduct, SquaredL2
from dnnh.losses.triplet_ranking import TripletRankingLoss

__all__ = ["DISTANCES", "DotProduct", "SquaredL2", "TripletRankingLoss"]
