"""Training on N processes with torch.distributed: the process group and its collectives (`comm.py`), the
trainer whose ranks each hold a shard of the chains (`trainer.py`), and the OT auction over those shards
(`auction.py`). See `comm.py` for the sharding and the collectives' guarantees."""
from .comm import (TIMEOUT_S, CollectiveError, Comm, active, bounds, close, init, is_lead, launched,
                   naming_the_rank, timeout_s)

__all__ = ["TIMEOUT_S", "CollectiveError", "Comm", "active", "bounds", "close", "init", "is_lead", "launched",
           "naming_the_rank", "timeout_s"]
