"""sources.yaml: the checked-in configs validate, and bad ones fail at start naming file, field and fix."""

from pathlib import Path

import pytest

from converters import REGISTRY
from pipeline.config import load_config
from pipeline.errors import ConfigError
from pipeline.tasks import TASKS
from pipeline.templates import TemplateBank

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["sources.yaml", "configs/demo.yaml"])
def test_checked_in_configs_validate(name):
    cfg = load_config(ROOT / name)
    bank_tasks = set(TemplateBank.load().tasks())
    for src, sc in cfg.sources.items():
        assert sc.converter in REGISTRY, src
        REGISTRY[sc.converter].Options.model_validate(sc.options)  # options are valid for their converter
    for task in cfg.tasks:
        assert task in bank_tasks and (task in TASKS or task in ("negative", "refine")), task


def test_env_expansion_and_missing_variable(tmp_path, monkeypatch):
    p = tmp_path / "s.yaml"
    p.write_text('run:\n  name: "${CORPUS_NAME:-fallback}"\nsources:\n  a:\n    converter: coco\n    options:\n      x: "${NOPE}"\n')
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "sources.a.options.x" in str(e.value) and "NOPE" in str(e.value)
    monkeypatch.setenv("NOPE", "1")
    assert load_config(p).run.name == "fallback"


@pytest.mark.parametrize("text, field", [
    ("run: [1, 2\n", "line 2, column 1: invalid YAML"),
    ("sources: {}\n", "sources"),
    ("run: {format: json}\nsources: {a: {converter: coco}}\n", "run.format"),
    ("run: {seeed: 1}\nsources: {a: {converter: coco}}\n", "run.seeed"),
    ("- just a list\n", "<top level>"),
])
def test_bad_yaml_names_the_field(tmp_path, text, field):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(p) in str(e.value) and field in str(e.value)
