"""Hard negatives (GRIT / Ferret): image-conditioned absent categories and semantics-conditioned phrase rewrites.

- :mod:`.offline`  the default miner, no model (:mod:`.taxonomy`, :mod:`.guard`, :mod:`.phrases`)
- :mod:`.llm`      rewrites through any OpenAI-compatible server, validated, cached (:mod:`.cache`)
- :mod:`.verify`   optional Grounding DINO check (extra ``[dino]``)
- :mod:`.stage`    :class:`NegativeStage`, the callable the executor runs on a list of records

Importing this package imports no openai, torch or groundingdino. See docs/negatives.md.
"""

from pipeline.negatives.stage import NegativeStage

__all__ = ["NegativeStage"]
