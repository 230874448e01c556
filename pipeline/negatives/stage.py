"""NegativeStage: the hard-negatives stage, a callable on a list of records (Ray runs it as an actor pool, tests
and the local executor in a plain loop).

Per record it stores::

    record.extras["negatives"] = [{"kind": "category" | "phrase", "phrase", "original", "text_id",
                                   "miner": "offline" | "llm", "verified", "provenance": {model, prompt_hash,
                                   cache_key}}, ...]
    record.extras["negatives_meta"] = {"miner", "verified", "model", "prompt_hash"}
    record.extras["stats"]["negatives.<name>"] += n      (emitted, category, phrase, llm_calls, cache_hits, ...)

and appends a ``Skip(kind="text", reason="negatives.<reason>")`` for every text whose rewrite failed.
Image-conditioned (category) negatives always come from the offline miner; ``miner: llm`` replaces the offline
phrase rewrites by LLM rewrites.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pipeline.config import NegativesConfig
from pipeline.negatives.cache import ResponseCache
from pipeline.negatives.offline import OFFLINE_MODEL, OfflineMiner, negative
from pipeline.negatives.settings import OfflineSettings, parse_llm, parse_verify
from pipeline.records import Record, Skip

log = logging.getLogger(__name__)

CACHE_FILE = "negatives/llm_cache.sqlite3"


class NegativeStage:
    def __init__(self, cfg: NegativesConfig, cache_dir: str | os.PathLike, templates_dir: str | os.PathLike,
                 seed: int = 0, run_id: str | None = None, offline: OfflineSettings | None = None,
                 config_file: str = "<config>", verifier=None, select=None):
        """``run_id``: the budget key; give every actor of one run the same id (default: one per instance).
        ``verifier``: an already loaded :class:`~pipeline.negatives.verify.DinoVerifier` to reuse."""
        self.cfg, self.file = cfg, config_file
        self.select = select  # Record -> bool: mine only records a dialogue will use (NegativeSelector)
        self.cache_dir, self.templates_dir = Path(cache_dir), Path(templates_dir)
        self.run_id = run_id or uuid.uuid4().hex
        off = offline or OfflineSettings()
        self.offline = OfflineMiner(seed, off.categories_per_image, off.phrases_per_text)
        self.llm_settings = parse_llm(cfg.llm, config_file)
        self.verify_settings = parse_verify(cfg.verify, config_file)
        self._llm = None
        self._verifier = verifier
        if cfg.enabled:  # configuration problems (model, key, templates, checkpoint) fail at start, not mid-run
            if cfg.miner == "llm":
                self._make_llm()
            self._make_verifier()

    # -- lazily built heavy parts ----------------------------------------------------------------------------
    def _make_llm(self):
        if self._llm is None:
            from pipeline.negatives.llm import LLMMiner

            cache = ResponseCache(self.cache_dir / CACHE_FILE)
            self._llm = LLMMiner(self.llm_settings, cache, self.templates_dir, self.run_id, self.file)
        return self._llm

    def _make_verifier(self):
        if self._verifier is None and self.verify_settings.checkpoint:
            from pipeline.negatives.verify import DinoVerifier

            self._verifier = DinoVerifier(self.verify_settings, self.file)
        return self._verifier

    def __getstate__(self) -> dict:  # ship config, not clients or models, to Ray workers
        state = self.__dict__.copy()
        state["_llm"] = state["_verifier"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.cfg.enabled and self.cfg.miner == "llm":
            self._make_llm()

    # -- one batch -------------------------------------------------------------------------------------------
    def __call__(self, records: list[Record]) -> list[Record]:
        if not self.cfg.enabled:
            return records
        records_all = records
        if self.select is not None:
            picked = [bool(self.select(r)) for r in records]
            for r, p in zip(records, picked):
                if not p:
                    bucket = r.extras.setdefault("stats", {})
                    bucket["negatives.not_selected"] = int(bucket.get("negatives.not_selected", 0)) + 1
            records = [r for r, p in zip(records, picked) if p]
        use_llm = self.cfg.miner == "llm"
        if not use_llm:
            results = [self.offline(r) for r in records]
        else:
            llm = self._make_llm()
            with ThreadPoolExecutor(max_workers=self.llm_settings.concurrency,
                                    thread_name_prefix="negatives-llm") as pool:
                futures = [pool.submit(self._llm_record, r) for r in records]  # requests start now...
                results = [self.offline(r, phrases=False) for r in records]  # ...while categories are mined
                for res, fut in zip(results, futures):
                    extra = fut.result()
                    res[0].extend(extra[0])
                    res[1].update(extra[1])
                    res[2].extend(extra[2])
        verifier = self._make_verifier()
        for record, (negs, stats, skips) in zip(records, results):
            if verifier is not None and negs:
                try:
                    found = verifier.found(record.image.path, [n["phrase"] for n in negs])
                except OSError as e:  # unreadable image: keep the negatives, unverified, and say so
                    log.warning("%s: cannot verify negatives: %s", record.id, e)
                    stats["negatives.verify_image_error"] += 1
                else:
                    stats["negatives.detector_found"] += sum(found)
                    negs = [n for n, f in zip(negs, found) if not f]
                    for n in negs:
                        n["verified"] = True
            stats["negatives.emitted"] += len(negs)
            stats["negatives.category"] += sum(n["kind"] == "category" for n in negs)
            stats["negatives.phrase"] += sum(n["kind"] == "phrase" for n in negs)
            record.extras["negatives"] = negs
            record.extras["negatives_meta"] = {
                "miner": self.cfg.miner, "verified": verifier is not None,
                "model": llm.s.model if use_llm else OFFLINE_MODEL,
                "prompt_hash": llm.prompt_hash if use_llm else None}
            bucket = record.extras.setdefault("stats", {})
            for k, v in sorted(stats.items()):
                bucket[k] = int(bucket.get(k, 0)) + int(v)
            record.skips.extend(skips)
        return records_all

    def _llm_record(self, record: Record) -> tuple[list[dict], Counter, list[Skip]]:
        llm = self._llm
        guard = self.offline.guard(record)
        sources = self.offline.source_phrases(record, guard, self.offline.rng(record))[: llm.s.max_phrases]
        stats: Counter = Counter()
        if not sources:
            return [], stats, []
        categories = sorted({i.category for i in record.instances})
        outcome = llm.rewrite([s.phrase for s in sources], guard, categories)
        stats.update(outcome.stats)
        if outcome.rewrites is None:
            skips = [Skip(source=record.source, kind="text", item_id=tid, reason=f"negatives.{outcome.reason}",
                          detail=outcome.detail) for tid in dict.fromkeys(s.text_id for s in sources)]
            return [], stats, skips
        negs = [negative("phrase", new, s.phrase, s.text_id, "llm", llm.s.model, llm.prompt_hash, outcome.cache_key)
                for s, new in zip(sources, outcome.rewrites)]
        return negs, stats, []

    def close(self) -> None:
        if self._llm is not None:
            self._llm.close()
            self._llm.cache.close()
