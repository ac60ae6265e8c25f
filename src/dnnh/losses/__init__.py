"""Losses on approximate codes. Each is a small class; the training loop picks one by name."""

from dnnh.losses.distances import DISTANCES, DotProduct, SquaredL2
from dnnh.losses.pairwise import ClassifierLoss, CSQLoss, DPSHLoss, DSHLoss, hadamard_centers
from dnnh.losses.triplet_ranking import TripletRankingLoss

__all__ = ["CSQLoss", "ClassifierLoss", "DPSHLoss", "DSHLoss", "hadamard_centers", "DISTANCES", "DotProduct", "SquaredL2", "TripletRankingLoss"]
