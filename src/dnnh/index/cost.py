"""Choosing a strategy by estimated cost, in units of one 64-bit XOR-and-popcount in a scan.

Three ways find every stored code within a radius r of a query, all exact:

- scan: a distance to each of the m distinct codes; cost m * words * SCAN.
- probe: look up each of the ball(nbits, r) codes within r in a table; cost ball * PROBE.
- mih: probe each substring's small ball in s substring tables, then check the candidates met;
  cost (substring probes) * MIH_PROBE + candidates * words * VERIFY.
- prefix: probe the ball of the directory's b-bit prefixes and check the codes of those buckets
  (about m / 2**b each); cost ball(b, r) * PREFIX + ball(b, r) * m / 2**b * words * VERIFY. It needs
  no table beyond the directory, so where MIH's tables would be large next to the items (random
  codes: m close to n, 16 bytes a code a substring) MIH is left out and this takes its place.

The candidates MIH meets depend on the data. Learned codes share substrings far more often than
random ones, so once the tables exist the estimate uses their real bucket sizes (weighted by items,
since queries are drawn like the items) instead of the uniform guess m * ball(b, r') / 2**b.
The constants were measured on this project's machines (see docs/results/index.md); they only need
to be right within a small factor, since the strategies' costs differ by orders of magnitude.
k-NN probes the balls of radius 0, 1, ... first and scans only if they hold fewer than k items: a
learned query usually sits on or next to a stored code. Probing that fails is wasted, so the balls
probed may cost at most p * (scan cost), p the share of earlier queries that probing settled
(starting from KNN_PRIOR): on random codes probing soon stops, on learned codes it goes deeper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from dnnh.index.layout import ball_size, directory_bits
from dnnh.index.mih import split, table_radii

STRATEGIES = ("auto", "scan", "probe", "mih", "prefix")
MIH_SHARE = 1.0  # "auto" builds MIH tables only while they take at most this share of the items' own bytes
prefix_bits = directory_bits
PREFIX_BLOCK = 64  # codes a prefix bound covers in numba's scans (kernels.PREFIX_BLOCK; numba-free here)
KNN_STRATEGIES = ("auto", "scan")
KNN_PRIOR = 0.25        # assumed share of queries settled by probing, before any is measured
KNN_PRIOR_WEIGHT = 8.0  # worth that many queries of evidence
MAX_PROBES = 50_000_000  # a forced probe beyond this many codes per query is refused

# unit costs per kernel: scan per code word, probe per full-code lookup, mih per substring lookup,
# verify per candidate word (random access, dedup, distance), prefix per bucket of the prefix ball
# and read per code word read there (contiguous runs of the sorted codes)
# (benchmarks/index_costs.py measures them. numba's scan tests 32 codes a branch with vector
# popcounts: one unit was 0.09-0.13 ns on this project's AMD EPYC with AVX-512 VPOPCNTDQ (it was
# 0.64 ns with the scalar loop), a probe of its hash table 25-46 ns, an MIH substring lookup
# 190-320 ns and a candidate check 2-3.5 ns, measured on a shared machine. numpy: 1.6 ns a code
# scanned row by row, 50 ns a probe with searchsorted, 130 ns a candidate; FAISS 0.54 ns a code)
# order: per candidate and halving, putting MIH's codes in code order within a distance (a scan
# meets them in that order, probing sorts them too but a probe costs far more); numpy and FAISS
# sort every strategy's candidates alike, so it does not enter their choice.
UNIT_COSTS: dict[str, dict[str, float]] = {
    "numba": {"scan": 1.0, "probe": 300.0, "mih_probe": 2000.0, "verify": 25.0, "order": 10.0, "prefix": 150.0,
              "read": 5.0},
    "faiss": {"scan": 1.0, "probe": 100.0, "mih_probe": 180.0, "verify": 250.0, "order": 0.0, "prefix": 60.0,
              "read": 15.0},
    "numpy": {"scan": 1.0, "probe": 30.0, "mih_probe": 60.0, "verify": 90.0, "order": 0.0, "prefix": 30.0,
              "read": 8.0},
}


@dataclass
class RangePlan:
    strategy: str
    s: int = 0                      # MIH substrings when strategy == "mih"
    costs: dict[str, float] = field(default_factory=dict)


def knn_success(tried: int, settled: int) -> float:
    """Estimated share of k-NN queries that probing settles, from the queries seen so far."""
    return (settled + KNN_PRIOR * KNN_PRIOR_WEIGHT) / (tried + KNN_PRIOR_WEIGHT)


def knn_probe_levels(m: int, nwords: int, nbits: int, kernel: str, success: float = KNN_PRIOR) -> int:
    """Highest ball radius k-NN probes before scanning (-1: scan straight away)."""
    unit = UNIT_COSTS[kernel]
    budget = success * m * nwords * unit["scan"]
    level, spent = -1, 0.0
    while level < nbits:
        spent += math.comb(nbits, level + 1) * unit["probe"]
        if spent > budget:
            break
        level += 1
    return level


def _mih_uniform(m: int, nwords: int, nbits: int, radius: int, s: int, unit: dict[str, float]) -> float:
    _, widths = split(nbits, s)
    probes = cand = 0.0
    for w, r in zip(widths, table_radii(radius, s)):
        if r >= 0:
            ball = float(ball_size(int(w), int(r)))
            probes += ball
            cand += min(m, m * ball / 2.0 ** int(w))
    return probes * unit["mih_probe"] + cand * nwords * unit["verify"] + _order_cost(cand, unit)


def _order_cost(candidates: float, unit: dict[str, float]) -> float:
    return candidates * math.log2(max(candidates, 2.0)) * unit["order"]


def plan_range(m: int, nwords: int, nbits: int, radius: int, kernel: str,
               mih_candidates: Callable[[int], float] | None = None,
               scan_share: Callable[[], float] | None = None, item_bytes: int | None = None,
               prefix_codes: Callable[[], float] | None = None) -> RangePlan:
    """Cheapest strategy for a radius search; ``mih_candidates(s)`` measures the data when called.

    ``scan_share()`` (numba's scan) measures the share of the sorted codes a scan reads at this
    radius after skipping the blocks whose common prefix is too far (:mod:`dnnh.index.layout`'s
    ``prefix_bounds``); the scan also tests every block's bound, about one unit a block.
    ``prefix_codes()`` measures the codes a prefix-ball search reads a query. With ``item_bytes``, MIH is a candidate only while its tables (16 bytes a distinct code
    a substring) stay within :data:`MIH_SHARE` of ``item_bytes``, what the items themselves take (codes,
    offsets, positions, ids): on learned codes (m far below n) they do, on random codes (m = n)
    they would triple the index, and the prefix ball, which needs no table, answers instead.
    """
    unit = UNIT_COSTS[kernel]
    costs = {"scan": m * nwords * unit["scan"]}
    if scan_share is not None:
        costs["scan"] = costs["scan"] * scan_share() + m / PREFIX_BLOCK * nwords * unit["scan"]
    ball = ball_size(nbits, radius)
    costs["probe"] = float(ball) * unit["probe"] if ball <= MAX_PROBES else math.inf
    bits = prefix_bits(m, nbits)
    buckets = float(ball_size(bits, radius))
    if buckets > MAX_PROBES:
        costs["prefix"] = math.inf
    else:  # codes read: measured on the data where it can be (learned codes crowd the buckets near a query)
        read = prefix_codes() if prefix_codes is not None else buckets * m / 2.0 ** bits
        costs["prefix"] = buckets * unit["prefix"] + read * nwords * unit["read"]
    best_s, costs["mih"] = 0, math.inf
    s_min = max(2, -(-nbits // 64))
    for s in range(s_min, max(s_min, min(radius + 1, nbits)) + 1):
        if s > nbits:
            break
        if item_bytes is not None and 16.0 * s * m > MIH_SHARE * item_bytes:
            continue
        cost = _mih_uniform(m, nwords, nbits, radius, s, unit)
        if cost < costs["mih"]:
            best_s, costs["mih"] = s, cost
    if costs["mih"] < min(costs["scan"], costs["probe"], costs["prefix"]) and mih_candidates is not None:
        _, widths = split(nbits, best_s)
        probes = sum(float(ball_size(int(w), int(r))) for w, r in zip(widths, table_radii(radius, best_s)) if r >= 0)
        cand = mih_candidates(best_s)
        costs["mih"] = probes * unit["mih_probe"] + cand * nwords * unit["verify"] + _order_cost(cand, unit)
    strategy = min(("probe", "mih", "prefix", "scan"), key=lambda name: costs[name])
    return RangePlan(strategy, best_s, costs)


def default_mih_s(nbits: int, radius: int, m: int) -> int:
    """s for a forced MIH search: Norouzi's nbits / log2(m), at least enough for 64-bit substrings."""
    s = round(nbits / max(math.log2(max(m, 2)), 1.0))
    return int(min(max(s, -(-nbits // 64), 1), nbits, max(radius + 1, -(-nbits // 64))))
