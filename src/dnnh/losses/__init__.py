"""Training objectives on approximate codes, all keeping one contract (:mod:`dnnh.losses.base`).

DNNH's :class:`TripletRankingLoss` scores triplets; :class:`MinedTriplets` (with a miner handed
in) and :class:`ThreeStreamTriplets` turn it into objectives; DPSH, DSH, CSQ, the classifier
reference and CNNH's two stages are siblings. The registry from a loss name to its objective is
:func:`dnnh.training.objectives.make_objective`.
"""

from dnnh.losses.base import BatchObjective, Objective
from dnnh.losses.cnnh import CNNHLoss, cnnh_target_codes
from dnnh.losses.pairwise import ClassifierLoss, CSQLoss, DPSHLoss, DSHLoss, hadamard_centers
from dnnh.losses.triplet_ranking import TripletRankingLoss
from dnnh.losses.triplets import MinedTriplets, ThreeStreamTriplets, TripletMiner
from dnnh.similarity import DISTANCES, DotProduct, SquaredL2

__all__ = ["BatchObjective", "CNNHLoss", "CSQLoss", "ClassifierLoss", "DISTANCES", "DPSHLoss", "DSHLoss",
           "DotProduct", "MinedTriplets", "Objective", "SquaredL2", "ThreeStreamTriplets", "TripletMiner",
           "TripletRankingLoss", "cnnh_target_codes", "hadamard_centers"]
