"""dnnh: deep supervised hashing (DNNH, Lai et al., CVPR 2015) and what users compare it against."""

__version__ = "0.1.0"
