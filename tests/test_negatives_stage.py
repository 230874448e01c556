"""NegativeStage on the real COCO sample: output schema, counters, determinism, pickling (Ray ships it)."""

from __future__ import annotations

import pickle
from pathlib import Path

from openai_server import OpenAIServer

from pipeline.config import NegativesConfig
from pipeline.negatives.settings import OfflineSettings
from pipeline.negatives.stage import NegativeStage

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
KEYS = {"kind", "phrase", "original", "text_id", "miner", "verified", "provenance"}


def _copies(records, n=None):
    return [r.model_copy(deep=True) for r in records[:n]]


def test_offline_stage_schema_and_counters(coco_real_records, tmp_path):
    recs = _copies(coco_real_records)
    for r in recs:
        r.extras["stats"] = {"grid.emitted": 7}  # another stage's counter survives
    out = NegativeStage(NegativesConfig(), tmp_path, TEMPLATES)(recs)
    assert out is recs
    total = 0
    for r in recs:
        negs = r.extras["negatives"]
        text_ids = {t.id for t in r.texts}
        for n in negs:
            assert set(n) == KEYS and n["kind"] in ("category", "phrase") and n["miner"] == "offline"
            assert set(n["provenance"]) == {"model", "prompt_hash", "cache_key"}
            assert isinstance(n["phrase"], str) and n["phrase"] and n["verified"] is False
            if n["kind"] == "phrase":
                assert n["text_id"] in text_ids and n["original"]
            else:
                assert n["text_id"] is None and n["original"] is None
        st = r.extras["stats"]
        assert st["grid.emitted"] == 7
        assert st["negatives.emitted"] == len(negs) == st["negatives.category"] + st.get("negatives.phrase", 0)
        assert all(isinstance(v, int) for v in st.values())
        failures = sum(v for k, v in st.items() if k.startswith("negatives.rewrite_"))
        assert failures == sum(s.reason.startswith("negatives.") for s in r.skips)
        assert r.extras["negatives_meta"] == {"miner": "offline", "verified": False, "model": "offline-miner/1",
                                              "prompt_hash": None}
        total += len(negs)
    assert total > 6 * len(recs)


def test_deterministic_and_seeded(coco_real_records, tmp_path):
    a = NegativeStage(NegativesConfig(), tmp_path, TEMPLATES, seed=3)(_copies(coco_real_records, 20))
    b = NegativeStage(NegativesConfig(), tmp_path, TEMPLATES, seed=3)(_copies(coco_real_records, 20))
    c = NegativeStage(NegativesConfig(), tmp_path, TEMPLATES, seed=4)(_copies(coco_real_records, 20))
    assert [r.extras for r in a] == [r.extras for r in b]
    assert [r.extras["negatives"] for r in a] != [r.extras["negatives"] for r in c]


def test_disabled_and_offline_settings(coco_real_records, tmp_path):
    recs = _copies(coco_real_records, 5)
    NegativeStage(NegativesConfig(enabled=False), tmp_path, TEMPLATES)(recs)
    assert all("negatives" not in r.extras for r in recs)
    NegativeStage(NegativesConfig(), tmp_path, TEMPLATES,
                  offline=OfflineSettings(categories_per_image=5, phrases_per_text=0))(recs)
    assert all(r.extras["stats"]["negatives.category"] == 5 for r in recs)
    assert all("negatives.phrase" not in r.extras["stats"] or r.extras["stats"]["negatives.phrase"] == 0
               for r in recs)


def test_stage_pickles_without_its_client(coco_real_records, tmp_path, monkeypatch):
    monkeypatch.setenv("REFFORGE_TEST_LLM_KEY", "sk-test")
    with OpenAIServer() as server:
        cfg = NegativesConfig(miner="llm", llm={"base_url": server.base_url, "model": "m",
                                                "api_key_env": "REFFORGE_TEST_LLM_KEY"})
        stage = NegativeStage(cfg, tmp_path, TEMPLATES, run_id="r")
        blob = pickle.dumps(stage)
        assert b"sk-test" not in blob
        clone = pickle.loads(blob)
        recs = clone(_copies(coco_real_records, 2))
        assert len(server.chat_requests()) == 2
        assert all(any(n["miner"] == "llm" for n in r.extras["negatives"]) for r in recs)
        assert recs[0].extras["negatives_meta"]["miner"] == "llm"
        clone.close()
        stage.close()
