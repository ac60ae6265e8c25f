"""Training objectives on approximate codes, all keeping one contract (:mod:`dnnh.losses.base`).

DNNH's :class:`TripletRankingLoss` scores triplets; :class:`MinedTriplets` (with a miner handed
in) and :class:`ThreeStreamTriplets` turn it into objectives; DPSH, DSH, CSQ, the classifier
reference, CNNH's two stages, OrthoHash, DPN, DTSH, HashNet and GreedyHash are siblings. The
registry from a loss name to its objective is :func:`dnnh.training.objectives.make_objective`.
"""

from dnnh.losses.base import BatchObjective, Objective
from dnnh.losses.cnnh import CNNHLoss, cnnh_target_codes
from dnnh.losses.codebook import CODEBOOKS, DPNLoss, OrthoHashLoss, make_codebook
from dnnh.losses.greedy import GreedyHashLoss, sign_straight_through
from dnnh.losses.likelihood import DTSHLoss, HashNetLoss
from dnnh.losses.pairwise import ClassifierLoss, CSQLoss, DPSHLoss, DSHLoss, hadamard_centers
from dnnh.losses.triplet_ranking import TripletRankingLoss
from dnnh.losses.triplets import MinedTriplets, ThreeStreamTriplets, TripletMiner
from dnnh.similarity import DISTANCES, DotProduct, SquaredL2

__all__ = ["BatchObjective", "CNNHLoss", "CODEBOOKS", "CSQLoss", "ClassifierLoss", "DISTANCES", "DPNLoss", "DPSHLoss",
           "DSHLoss", "DTSHLoss", "DotProduct", "GreedyHashLoss", "HashNetLoss", "MinedTriplets", "Objective",
           "OrthoHashLoss", "SquaredL2", "ThreeStreamTriplets", "TripletMiner", "TripletRankingLoss",
           "cnnh_target_codes", "hadamard_centers", "make_codebook", "sign_straight_through"]
