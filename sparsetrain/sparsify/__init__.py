"""Gate-gradient methods: one registry; `build(spec)` gives a sparsifier for a layer.

    sp = build({"name": "coarse", "R": 8, "S": 4})
    s = sp(dnet)              # dnet's shape, dropped entries zero
    sp.stats()                # {"sparsity", "kept_energy", "cosine"} since the last read
"""

from sparsetrain.sparsify.base import (
    Compact, Param, Sparsifier, build, names, register_method, resolve, summarize,
)
from sparsetrain.sparsify import elementwise, meprop, structured  # noqa: F401  (registers)

__all__ = ["Compact", "Param", "Sparsifier", "build", "names", "register_method", "resolve",
           "summarize"]
