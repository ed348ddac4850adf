"""WDMA: Weighted Deviation from Mean Agreement (Burke, Mobasher, Williams, Bhaumik,
"Classification features for attack detection in collaborative recommender systems",
KDD 2006).

Like RDMA with ``NR_i**2`` in the denominator, which weights rarely rated items (where
fake ratings stand out most) more.  Threat model and inputs as :mod:`.rdma`.
"""
from __future__ import annotations

from apt_core.detection.rdma import RDMA


class WDMA(RDMA):
    name = "wdma"
    summary = "RDMA with squared item counts: rare items weigh more (Burke et al. 2006)"
    count_power = 2.0
