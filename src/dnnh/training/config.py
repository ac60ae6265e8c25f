"""The training config's old home: :mod:`dnnh.config` holds it now (below runs and training).

``from dnnh.training.config import TrainConfig`` keeps working for code written against it.
"""

from dnnh.config import (AUGMENTS, LOSS_FIELDS, LOSSES, PRECISIONS, RECIPES, REFORMED, RUNTIME_FIELDS,
                         TRIPLET_FIELDS, TRIPLET_MODES, ObjectiveSpec, TrainConfig, config_differences,
                         predates_reform, resolve_precision)

__all__ = ["AUGMENTS", "LOSSES", "LOSS_FIELDS", "ObjectiveSpec", "PRECISIONS", "RECIPES", "REFORMED",
           "RUNTIME_FIELDS", "TRIPLET_FIELDS", "TRIPLET_MODES", "TrainConfig", "config_differences",
           "predates_reform", "resolve_precision"]
