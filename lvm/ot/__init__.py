"""Optimal transport between the latent population and prior draws (the paper's Alg. 2 and its exact and
certified replacements).

`solve` is the front door (`solve.py`): it picks the paper's argmax passes, scipy's exact assignment or the
certified auction (`auction.py`, with the candidate lists of `candidates.py`) from an `OTConfig`, and
`correct` applies Eq. 10. `bench.py` is ``python -m lvm bench ot``.
"""
from .solve import (EXACT_MAX_N, Interrupt, OTResult, Progress, WarmStart, argmax_assign, correct, solve,
                    solve_exact, solve_fast, solve_paper, to_bijection)

__all__ = ["EXACT_MAX_N", "Interrupt", "OTResult", "Progress", "WarmStart", "argmax_assign", "correct", "solve",
           "solve_exact", "solve_fast", "solve_paper", "to_bijection"]
