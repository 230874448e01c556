"""The LLM miner against a real local HTTP server speaking the OpenAI protocol, through the real openai client."""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import sqlite3
import time
from pathlib import Path

import pytest
from openai_server import OBJECTS, OpenAIServer, input_phrases

from pipeline.config import NegativesConfig
from pipeline.errors import ConfigError
from pipeline.negatives.llm import templates_hash
from pipeline.negatives.stage import CACHE_FILE, NegativeStage
from pipeline.records import ImageRef, Instance, Record, Text

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "templates"
KEY_ENV = "REFFORGE_TEST_LLM_KEY"
KEY = "sk-planted-9f2c41d7e8b3a6"


def _records(n: int = 1, tag: str = "") -> list[Record]:
    out = []
    for i in range(n):
        rid = f"t/val/{tag}{i}"
        out.append(Record(
            id=rid, source="t", split="val", image=ImageRef(path="/nonexistent.jpg", sha256="0", width=8, height=8),
            instances=[Instance(id="1", category="dog", box=(0, 0, 1, 1)),
                       Instance(id="2", category="person", box=(0, 0, 1, 1))],
            texts=[Text(id=f"{rid}/a", kind="refexp", text=f"two dogs {tag}{i}".strip()),
                   Text(id=f"{rid}/b", kind="refexp", text="the man on the left")]))
    return out


def _llm_negs(record: Record) -> list[dict]:
    return [n for n in record.extras["negatives"] if n["miner"] == "llm"]


@pytest.fixture
def server():
    with OpenAIServer() as s:
        yield s


@pytest.fixture
def make_stage(tmp_path, monkeypatch, server):
    monkeypatch.setenv(KEY_ENV, KEY)
    made = []

    def make(run_id: str = "run-1", **llm) -> NegativeStage:
        settings = {"base_url": server.base_url, "model": "test-model", "api_key_env": KEY_ENV, "max_retries": 2,
                    "timeout": 10.0, "max_reasks": 1, "concurrency": 4, **llm}
        stage = NegativeStage(NegativesConfig(miner="llm", llm=settings), tmp_path / "cache", TEMPLATES,
                              run_id=run_id)
        made.append(stage)
        return stage

    yield make
    for stage in made:
        stage.close()


def test_good_reply(make_stage, server):
    recs = make_stage()(_records(2))
    reqs = server.chat_requests()
    assert len(reqs) == 2
    body = reqs[0]["body"]
    assert reqs[0]["headers"]["authorization"] == f"Bearer {KEY}"
    assert body["model"] == "test-model" and body["temperature"] == 0.2
    assert body["response_format"] == {"type": "json_object"}
    prompt = body["messages"][0]["content"]
    assert "inclusive words" in prompt and "dog, person" in prompt and "puppy" in prompt
    for rec in recs:
        negs = _llm_negs(rec)
        assert [n["original"] for n in negs] == [t.text for t in rec.texts]
        assert [n["phrase"] for n in negs] == list(OBJECTS[:2])
        assert {n["text_id"] for n in negs} == {t.id for t in rec.texts}
        prov = negs[0]["provenance"]
        assert prov["model"] == "test-model" and prov["prompt_hash"] == templates_hash(TEMPLATES)
        assert len(prov["cache_key"]) == 64
        assert rec.extras["stats"]["negatives.llm_calls"] == 1
        assert rec.extras["stats"]["negatives.category"] == 3 and not rec.skips


def test_429_then_success(make_stage, server):
    server.push({"status": 429})
    rec = make_stage()(_records(1))[0]
    assert len(server.chat_requests()) == 2  # the client retried by itself
    assert len(_llm_negs(rec)) == 2 and rec.extras["stats"]["negatives.llm_calls"] == 1


def test_500_until_the_client_gives_up(make_stage, server):
    server.push(*[{"status": 500}] * 3)
    rec = make_stage(max_retries=2)(_records(1))[0]
    assert len(server.chat_requests()) == 3
    assert _llm_negs(rec) == []
    assert rec.extras["stats"]["negatives.llm_error_http_500"] == 1
    assert [(s.kind, s.reason) for s in rec.skips] == [("text", "negatives.http_500")] * 2
    assert rec.extras["stats"]["negatives.category"] == 3  # image-conditioned negatives do not need the LLM


def test_timeout(make_stage, server):
    server.push({"delay": 2.0, "content": "{}"})
    t0 = time.perf_counter()
    rec = make_stage(timeout=0.3, max_retries=0)(_records(1))[0]
    assert time.perf_counter() - t0 < 1.8
    assert {s.reason for s in rec.skips} == {"negatives.timeout"}
    assert rec.extras["stats"]["negatives.llm_error_timeout"] == 1


def test_malformed_json_is_reasked_with_the_error(make_stage, server):
    server.push({"content": '{"rewrites": ["a violin",'})
    rec = make_stage()(_records(1))[0]
    reqs = server.chat_requests()
    assert len(reqs) == 2
    msgs = reqs[1]["body"]["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
    assert msgs[1]["content"] == '{"rewrites": ["a violin",'
    assert "not valid JSON" in msgs[2]["content"]
    st = rec.extras["stats"]
    assert st["negatives.invalid_replies"] == 1 and st["negatives.reasks"] == 1 and st["negatives.llm_calls"] == 2
    assert len(_llm_negs(rec)) == 2


def test_wrong_length_fails_after_max_reasks(make_stage, server):
    server.responder = lambda body: {"content": json.dumps({"rewrites": ["a violin"]})}
    rec = make_stage(max_reasks=1)(_records(1))[0]
    assert len(server.chat_requests()) == 2
    assert _llm_negs(rec) == []
    assert rec.extras["stats"]["negatives.invalid_reply"] == 1
    assert {s.reason for s in rec.skips} == {"negatives.invalid_reply"}
    assert "expected exactly 2 items, got 1" in rec.skips[0].detail


def test_item_equal_to_its_input(make_stage, server):
    server.responder = lambda body: {"content": json.dumps({"rewrites": input_phrases(body)})}
    rec = make_stage(max_reasks=0)(_records(1))[0]
    assert _llm_negs(rec) == [] and "same as its input" in rec.skips[0].detail


def test_item_naming_an_annotated_category_or_synonym(make_stage, server):
    server.push({"content": json.dumps({"rewrites": ["three puppies", "a lantern"]})})
    rec = make_stage()(_records(1))[0]
    reask = server.chat_requests()[1]["body"]["messages"][2]["content"]
    assert "puppies" in reask and "in the image" in reask
    assert [n["phrase"] for n in _llm_negs(rec)] == list(OBJECTS[:2])


def test_budget_reached_mid_run(make_stage, server):
    recs = make_stage(max_calls=3, concurrency=4)(_records(6))
    assert len(server.chat_requests()) == 3
    served = [r for r in recs if _llm_negs(r)]
    starved = [r for r in recs if not _llm_negs(r)]
    assert len(served) == 3 and len(starved) == 3
    assert all(r.extras["stats"]["negatives.budget_exhausted"] == 1 for r in starved)
    assert all({s.reason for s in r.skips} == {"negatives.budget_exhausted"} for r in starved)


def test_second_run_is_served_from_cache(make_stage, server):
    first = make_stage(run_id="a")(_records(3))
    n = len(server.chat_requests())
    assert n == 3
    second = make_stage(run_id="b")(_records(3))
    assert len(server.chat_requests()) == n  # zero HTTP requests
    assert [r.extras["negatives"] for r in first] == [r.extras["negatives"] for r in second]
    assert all(r.extras["stats"]["negatives.cache_hits"] == 1 for r in second)
    assert all("negatives.llm_calls" not in r.extras["stats"] for r in second)


def test_planted_key_is_never_written(make_stage, server, tmp_path):
    log_file = tmp_path / "run.log"
    handler = logging.FileHandler(log_file)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        server.push({"status": 500}, {"content": "not json"})
        recs = make_stage()(_records(3))
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()
    (tmp_path / "out.jsonl").write_text("\n".join(r.model_dump_json() for r in recs))
    assert server.chat_requests()[0]["headers"]["authorization"] == f"Bearer {KEY}"  # the key was used
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".sqlite3") for p in files) and log_file.stat().st_size > 0
    for p in files:
        assert KEY.encode() not in p.read_bytes(), p


def _process_run(base_url: str, cache_dir: str, q) -> None:
    stage = NegativeStage(NegativesConfig(miner="llm", llm={"base_url": base_url, "model": "test-model",
                                                            "api_key_env": KEY_ENV, "concurrency": 4}),
                          cache_dir, TEMPLATES, run_id="shared")
    recs = stage(_records(8))
    q.put([r.extras["negatives"] for r in recs])
    stage.close()


def test_concurrent_processes_share_the_cache(make_stage, server, tmp_path):
    cache_dir = tmp_path / "shared-cache"
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_process_run, args=(server.base_url, str(cache_dir), q)) for _ in range(3)]
    for p in procs:
        p.start()
    results = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert all(p.exitcode == 0 for p in procs)
    assert results[0] == results[1] == results[2]
    n = len(server.chat_requests())
    assert 8 <= n <= 24
    conn = sqlite3.connect(cache_dir / CACHE_FILE)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 8
    conn.close()
    stage = NegativeStage(NegativesConfig(miner="llm", llm={"base_url": server.base_url, "model": "test-model",
                                                            "api_key_env": KEY_ENV}), cache_dir, TEMPLATES)
    again = stage(_records(8))
    stage.close()
    assert len(server.chat_requests()) == n and [r.extras["negatives"] for r in again] == results[0]


def test_configuration_errors_name_the_field(tmp_path, monkeypatch, server):
    monkeypatch.delenv(KEY_ENV, raising=False)
    cases = [({"base_url": server.base_url, "api_key_env": None}, "negatives.llm.model"),
             ({"model": "m", "api_key_env": KEY_ENV}, "negatives.llm.api_key_env"),
             ({"model": "m", "api_key_env": None, "temprature": 0.1}, "negatives.llm.temprature"),
             ({"model": "m", "api_key_env": None, "concurrency": 0}, "negatives.llm.concurrency")]
    for llm, field in cases:
        with pytest.raises(ConfigError) as e:
            NegativeStage(NegativesConfig(miner="llm", llm=llm), tmp_path, TEMPLATES, config_file="sources.yaml")
        assert e.value.field == field and "sources.yaml" in str(e.value)


def test_refused_key_is_a_config_error(make_stage, server):
    server.push({"status": 401})
    with pytest.raises(ConfigError) as e:
        make_stage()(_records(1))
    assert e.value.field == "negatives.llm.api_key_env" and KEY not in str(e.value)
