"""The thin Ray layer: the Tune searcher, remote controller rounds and pseudo-labelling, supernet actors."""
from __future__ import annotations

from seminas_ray.distributed.searcher import AskTellSearcher
from seminas_ray.distributed.searcher import SemiNASSearcher

__all__ = ["AskTellSearcher", "SemiNASSearcher"]
