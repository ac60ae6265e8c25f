"""Where a run's data comes from and how it is split: the two descriptions train, bench and demo share.

A :class:`DataSource` is what a user typed (a dataset name or a path, the folder its files are
in, whether to skip unreadable images); a run stores it, so ``eval``, ``encode`` and
``index build`` reload the same data without being told again. A :class:`SplitSpec` is how to
cut a dataset into queries, database, training and validation items (a protocol with its counts
and seed, or a saved split file); :meth:`SplitSpec.resolve` is the one place a split is drawn.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from dnnh.data.registry import _canonical, load_dataset, make_split
from dnnh.data.splits import Split

#: The paper protocol's counts, used when a spec leaves them unset.
PAPER_QUERIES_PER_CLASS = 100
PAPER_TRAIN_PER_CLASS = 500


@dataclass(frozen=True)
class DataSource:
    """A dataset as the user named it: ``load()`` gives the dataset, ``to_dict()`` what a run stores."""

    data: str
    root: str | None = None
    skip_corrupt: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)  # the format loader's keywords

    def load(self):
        return load_dataset(self.data, root=self.root, skip_corrupt=self.skip_corrupt, **dict(self.options))

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.data, "root": self.root, "skip_corrupt": self.skip_corrupt, "options": dict(self.options)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DataSource":
        return cls(data=str(data["data"]), root=data.get("root"), skip_corrupt=bool(data.get("skip_corrupt", False)),
                   options=dict(data.get("options") or {}))

    @classmethod
    def of(cls, dataset: Any) -> "DataSource | None":
        """The source of a dataset loaded without one, when its name alone reloads it (``digits``)."""
        name = getattr(dataset, "name", None)
        return cls(name) if isinstance(name, str) and _canonical(name) == name else None


@dataclass(frozen=True)
class SplitSpec:
    """How to split a dataset: ``protocol`` with its per-class counts and ``seed``, or a saved ``file``.

    Counts left as None take the protocol's defaults (the paper's 100 queries and 500 training
    images a class).
    """

    protocol: str = "paper"
    queries_per_class: int | None = None
    train_per_class: int | None = None
    val_fraction: float = 0.1
    seed: int = 0
    file: Path | None = None

    def settings(self) -> dict[str, Any]:
        """The drawn split's settings with defaults filled in (what a bench folder records)."""
        queries, train = self.queries_per_class, self.train_per_class
        return {"protocol": self.protocol,
                "queries_per_class": PAPER_QUERIES_PER_CLASS if queries is None else queries,
                "train_per_class": PAPER_TRAIN_PER_CLASS if train is None else train,
                "val_fraction": self.val_fraction, "seed": self.seed}

    def draw(self, dataset: Any) -> Split:
        """A fresh split of ``dataset`` under the protocol (the file, if any, is ignored)."""
        s = self.settings()
        return make_split(dataset, protocol=s["protocol"], queries_per_class=s["queries_per_class"],
                          train_per_class=s["train_per_class"], val_fraction=s["val_fraction"], seed=s["seed"])

    def resolve(self, dataset: Any) -> Split:
        """The saved split when ``file`` is set (checked against the dataset), else a drawn one."""
        if self.file is not None:
            split = Split.load(self.file)
            split.check_fits(len(dataset))
            return split
        return self.draw(dataset)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["file"] = str(self.file) if self.file is not None else None
        return out
