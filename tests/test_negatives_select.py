"""The negatives stage mines only the records whose dialogues will ask a negative question."""

from pipeline.config import NegativesConfig
from pipeline.negatives.select import NegativeSelector, wants_negative
from pipeline.negatives.stage import NegativeStage
from pipeline.templates import default_root


def test_selector_is_seeded_and_matches_share(coco_real_records):
    sel = NegativeSelector(seed=3, share=0.25, dialogues=1)
    picks = [sel(r) for r in coco_real_records]
    assert picks == [NegativeSelector(3, 0.25, 1)(r) for r in coco_real_records]
    assert 5 <= sum(picks) <= 35  # 79 records at 25 %
    assert not any(wants_negative(3, r.id, 0, 0.0) for r in coco_real_records)


def test_stage_mines_only_selected_records(tmp_path, coco_real_records):
    recs = [r.model_copy(deep=True) for r in coco_real_records[:20]]
    sel = NegativeSelector(seed=1, share=0.3, dialogues=1)
    stage = NegativeStage(NegativesConfig(), tmp_path, default_root(), seed=1, select=sel)
    out = stage(recs)
    assert len(out) == 20
    for r in out:
        if sel(r):
            assert "negatives" in r.extras
        else:
            assert "negatives" not in r.extras and r.extras["stats"]["negatives.not_selected"] == 1
