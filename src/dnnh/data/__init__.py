"""Datasets for hashing: loaders for the paper's sets and a user's own images, and seeded splits.

``load_dataset(name_or_path, root=None, skip_corrupt=False, **options)`` is the entry point;
``make_split(dataset, protocol=...)`` draws query / database / train / validation indices.
The torch side (preprocessing, batches) is in :mod:`dnnh.data.pipeline`, imported separately so
that loading data does not import torch.
"""

from dnnh.data.cifar import CifarFormatError, load_cifar10
from dnnh.data.dataset import ArrayDataset, DataWarning, FileDataset, check_labels
from dnnh.data.digits import load_digits
from dnnh.data.download import ChecksumError, DownloadError
from dnnh.data.fingerprint import fingerprint_difference
from dnnh.data.folders import ManifestError, load_image_folder, load_manifest
from dnnh.data.idx import IdxFormatError, load_fashion_mnist, load_mnist, read_idx
from dnnh.data.images import CorruptImageError, read_image
from dnnh.data.nuswide import load_nuswide
from dnnh.data.registry import PROTOCOLS, dataset_names, load_dataset, make_split
from dnnh.data.splits import Split, auto_split, paper_split
from dnnh.data.svhn import load_svhn

__all__ = [
    "ArrayDataset", "FileDataset", "Split", "PROTOCOLS",
    "load_dataset", "make_split", "dataset_names", "paper_split", "auto_split", "check_labels",
    "fingerprint_difference", "DataWarning", "CifarFormatError",
    "load_digits", "load_mnist", "load_fashion_mnist", "load_cifar10", "load_svhn", "load_nuswide",
    "load_image_folder", "load_manifest", "read_idx", "read_image",
    "CorruptImageError", "ChecksumError", "DownloadError", "IdxFormatError", "ManifestError",
]
