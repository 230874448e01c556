"""Which dialogues get a hard-negative turn: one seeded draw per (record, dialogue), shared by the negatives
stage (mine only records that will use a negative, so an LLM is not called for nothing) and the composer."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.records import Record
from pipeline.seeds import rng_for


def wants_negative(seed: int, record_id: str, dialogue: int, share: float) -> bool:
    return share > 0 and float(rng_for(seed, record_id, dialogue, "negative-turn").random()) < share


@dataclass(frozen=True)
class NegativeSelector:
    seed: int
    share: float
    dialogues: int

    def __call__(self, record: Record) -> bool:
        return any(wants_negative(self.seed, record.id, d, self.share) for d in range(self.dialogues))
