import pytest

from dnnh.data.splits import paper_split
from dnnh.training.config import TrainConfig


@pytest.fixture(scope="session")
def small_split(digits):
    return paper_split(digits.labels, queries_per_class=5, train_per_class=30, val_fraction=0.2, seed=0)


@pytest.fixture
def tiny_config():
    """A few seconds of training: 12 bits, 8x8 inputs, 3 epochs."""
    return TrainConfig.from_recipe("modern", bits=12, input_size=8, epochs=3, batch_size=40, per_class=4,
                                   num_workers=0, threads=1)
