"""The template bank (pipeline.templates) and its linter (pipeline.template_lint).

The whole checked-in bank must lint clean (with real COCO categories and captions when ../shared is present); the
linter must catch each problem kind on tiny temp folders; loading errors name templates/<task>/<file>:<line>.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.errors import ConfigError
from pipeline.template_lint import PROBLEM_KINDS, lint, normalise, samples_from_records
from pipeline.templates import TemplateBank, plural_category, template_id

ROOT = Path(__file__).resolve().parents[1]
MY_TASKS = ["caption", "rec", "res", "reg", "ig_box", "ig_mask", "gcg_box", "gcg_mask", "detection",
            "segmentation", "counting"]
ALL_TASKS = MY_TASKS + ["keypoints", "box_keypoints", "relation", "relation_description", "relation_qa",
                        "relation_mcq", "region_query", "negative", "refine"]


@pytest.fixture(scope="module")
def bank() -> TemplateBank:
    return TemplateBank.load()


# ------------------------------------------------------------------------------------------- the real bank
def test_bank_loads_in_a_fresh_interpreter():
    code = ("from pipeline.templates import TemplateBank; b = TemplateBank.load(); "
            "print(' '.join(f'{t}={len(b.user(t))}' for t in b.tasks()))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    counts = dict(kv.split("=") for kv in out.stdout.split())
    assert sorted(counts) == sorted(ALL_TASKS)


def test_catalogue_declares_every_task(bank):
    assert bank.tasks() == sorted(ALL_TASKS)
    assert bank.spec("refine").image is False and bank.spec("refine").variables == []
    assert bank.spec("relation").regions == ["subject", "object"]
    assert bank.spec("rec").variables == ["image", "expression"] and bank.spec("rec").regions == []


def test_whole_bank_lints_clean_with_sample_values(bank):
    problems = lint(bank)
    assert problems == [], "\n".join(map(str, problems))


@pytest.mark.shared
def test_whole_bank_lints_clean_with_real_coco_records(bank, coco_real_records):
    samples = samples_from_records(coco_real_records)
    assert "people" in samples["category"] and len(samples["expression"]) >= 300  # 5 captions per image
    problems = lint(bank, coco_real_records)
    assert problems == [], "\n".join(map(str, problems))


@pytest.mark.parametrize("task", MY_TASKS)
def test_my_tasks_have_enough_distinct_templates(bank, task):
    users = bank.user(task)
    assert len({normalise(t.source) for t in users}) >= 110
    answers = bank.answer(task)
    assert len(answers) >= 10 and any(a.source == "{{ answer }}" for a in answers)
    assert task in bank.answer_files
    system = bank.system(task).render()
    assert 1 <= system.count(".") <= 2 and "{" not in system


def test_box_tasks_never_ask_for_masks_and_mask_tasks_never_ask_for_boxes(bank):
    for task in ("rec", "ig_box", "gcg_box", "detection", "counting"):
        bad = [t.source for t in bank.user(task) if "mask" in t.source.lower() or "segment" in t.source.lower()]
        assert not bad, (task, bad)
    for task in ("res", "ig_mask", "gcg_mask", "segmentation"):
        bad = [t.source for t in bank.user(task) if " box" in t.source.lower()]
        assert not bad, (task, bad)
    for task in ("caption", "reg"):  # captions ask for no locations; reg never names the prompt's kind
        bad = [t.source for t in bank.user(task)
               if any(w in t.source.lower() for w in (" box", "mask", "segment", "scribble", "coordinates"))]
        assert not bad, (task, bad)


def test_render_and_newline_escape(bank):
    t = next(t for t in bank.user("caption") if t.source.startswith("{{ image }}\\n"))
    assert t.render(image="<image>").startswith("<image>\n")
    rec = bank.user("rec")[0]
    out = rec.render(image="<image>", expression="the man in the red shirt")
    assert out.count("<image>") == 1 and "the man in the red shirt" in out and out == out.strip()
    assert bank.answer("rec")[1].render(answer="X") == "Sure. X"


def test_choose_is_deterministic_and_covers_the_templates(bank):
    a = [bank.choose("user", "rec", np.random.default_rng(7)).id for _ in range(3)]
    b = [bank.choose("user", "rec", np.random.default_rng(7)).id for _ in range(3)]
    assert a == b
    rng = np.random.default_rng(0)
    seen = {bank.choose("user", "rec", rng).id for _ in range(3000)}
    assert len(seen) == len(bank.user("rec"))  # uniform over ~118 templates: 3000 draws hit all of them
    assert bank.choose("system", "rec", rng) == bank.system("rec")


def test_unknown_task_and_kind_list_the_known_ones(bank):
    with pytest.raises(ConfigError, match="unknown task") as e:
        bank.user("captoin")
    assert "caption" in str(e.value) and "segmentation" in str(e.value)
    with pytest.raises(ConfigError, match="unknown task"):
        bank.choose("user", "nope", np.random.default_rng(0))
    with pytest.raises(ConfigError, match="unknown template kind"):
        bank.choose("assistant", "rec", np.random.default_rng(0))


def test_digest_is_stable_and_tracks_sources(bank, tmp_path):
    assert bank.digest() == TemplateBank.load().digest()
    root = _make(tmp_path, {"t": _task()})
    d1 = TemplateBank.load(root).digest()
    (root / "t" / "user.jinja").write_text("What is {{ region }} in {{ image }}?\nName {{ region }} in {{ image }}.\n")
    assert TemplateBank.load(root).digest() != d1


def test_bank_pickles_for_worker_processes(bank):
    clone = pickle.loads(pickle.dumps(bank))
    assert clone.digest() == bank.digest() and clone.tasks() == bank.tasks()
    for task in ("caption", "counting"):
        for a, b in zip(bank.user(task), clone.user(task)):
            assert (a.id, a.line) == (b.id, b.line)
            assert a.render(image="<image>", category="dogs") == b.render(image="<image>", category="dogs")
    assert clone.system("rec").render() == bank.system("rec").render()


def test_plural_category():
    assert [plural_category(c) for c in ("person", "bus", "traffic light", "knife", "skis", "teddy bear", "bench",
                                         "toothbrush", "cup", "sheep", "baby")] == \
        ["people", "buses", "traffic lights", "knives", "skis", "teddy bears", "benches", "toothbrushes", "cups",
         "sheep", "babies"]


# ------------------------------------------------------------------------------------------- tiny banks
def _task(user=None, answer=("{{ answer }}", "Sure. {{ answer }}"), system="You describe regions.",
          variables=("image", "region"), regions=("region",), image=True) -> dict:
    return {"spec": {"description": "test task", "image": image, "variables": list(variables),
                     "regions": list(regions)},
            "user": list(user or ["Describe {{ region }} in {{ image }}.", "What is {{ region }} in {{ image }}?"]),
            "answer": None if answer is None else list(answer), "system": system}


def _make(tmp_path: Path, tasks: dict[str, dict]) -> Path:
    root = tmp_path / "templates"
    root.mkdir(parents=True, exist_ok=True)
    (root / "catalog.yaml").write_text(yaml.safe_dump({k: v["spec"] for k, v in tasks.items()}))
    for name, t in tasks.items():
        (root / name).mkdir(exist_ok=True)
        (root / name / "system.jinja").write_text(t["system"] + "\n")
        (root / name / "user.jinja").write_text("\n".join(t["user"]) + "\n")
        if t["answer"] is not None:
            (root / name / "answer.jinja").write_text("\n".join(t["answer"]) + "\n")
    return root


def _kinds(tmp_path, task: dict, **kw) -> list[str]:
    kw = {"min_user": 2, "min_answer": 2, **kw}
    return sorted(p.kind for p in lint(TemplateBank.load(_make(tmp_path, {"t": task})), **kw))


def test_tiny_clean_bank_has_no_problems(tmp_path):
    assert _kinds(tmp_path, _task()) == []


BASE = ["Describe {{ region }} in {{ image }}.", "What is {{ region }} in {{ image }}?"]
LINT_CASES = {
    "undefined_variable": _task(user=BASE + ["Name {{ regoin }} in {{ image }}."]),
    "empty": _task(system="{{ '' }}"),
    "image_missing": _task(user=BASE + ["Describe {{ region }} briefly."]),
    "image_repeated": _task(user=BASE + ["{{ image }} Describe {{ region }} in {{ image }}."]),
    "image_forbidden": _task(user=BASE + ["<image> Name {{ region }}."]),
    "region_missing": _task(user=BASE + ["Describe the thing in {{ image }}."]),
    "region_extra": _task(user=BASE + ["Compare {{ region }} with {{ region }} in {{ image }}."]),
    "missing_variable": _task(user=["Find {{ expression }} in {{ image }}.", "Find it in {{ image }}."],
                              variables=("image", "expression"), regions=()),
    "duplicate": _task(user=BASE + ["describe  {{region}} IN {{ image }}."]),
    "near_duplicate": _task(user=BASE + ["Describe {{ region }} in {{ image }}!"]),
    "answer_count": _task(answer=("{{ answer }}", "Sure. {{ answer }} {{ answer }}")),
    "no_bare_answer": _task(answer=("Sure. {{ answer }}", "Here: {{ answer }}")),
    "trailing_whitespace": _task(user=BASE + ["Name {{ region }} in {{ image }}. "]),
    "format": _task(user=BASE + ['"Name {{ region }} in {{ image }}."']),
}


@pytest.mark.parametrize("kind", sorted(LINT_CASES))
def test_linter_catches(tmp_path, kind):
    assert _kinds(tmp_path, LINT_CASES[kind]) == [kind]


def test_linter_catches_the_rest(tmp_path):
    # too few user templates / answer wrappers
    assert _kinds(tmp_path / "a", _task(), min_user=3) == ["too_few"]
    kinds = sorted(p.kind for p in lint(TemplateBank.load(_make(tmp_path / "b", {"t": _task()})), min_answer=3,
                                        min_user=2))
    assert kinds == ["too_few"]
    # {{ image }} in a follow-up task, hard-coded <region>, <image> in an answer, rendered trailing whitespace
    refine = _task(user=["Refine the points.", "Refine them for {{ image }}."], variables=(), regions=(),
                   image=False)
    assert _kinds(tmp_path / "c", refine) == ["image_forbidden"]
    assert _kinds(tmp_path / "d", _task(user=BASE + ["Name <region> in {{ image }}."])) == \
        ["region_extra", "region_missing"]
    assert _kinds(tmp_path / "e", _task(answer=("{{ answer }}", "{{ answer }} <image>"))) == ["image_forbidden"]
    assert _kinds(tmp_path / "f", _task(user=BASE + ["{{ image }} \\nName {{ region }}."])) == \
        ["trailing_whitespace"]
    assert set(LINT_CASES) | {"too_few"} == set(PROBLEM_KINDS)


def test_lint_problem_names_file_and_line(tmp_path):
    root = _make(tmp_path, {"t": LINT_CASES["near_duplicate"]})
    (p,) = lint(TemplateBank.load(root), min_user=2, min_answer=2)
    assert p.where == "templates/t/user.jinja:3" and "line 1" in p.message and p.template_id.startswith("t/user/")


# ------------------------------------------------------------------------------------------- loading errors
def test_syntax_error_names_file_and_line(tmp_path):
    root = _make(tmp_path, {"t": _task(user=BASE + ["", "Describe {{ region in {{ image }}."])})
    with pytest.raises(ConfigError, match=r"templates/t/user\.jinja:4: .*syntax"):
        TemplateBank.load(root)
    root = _make(tmp_path, {"t": _task(system="\nYou describe {% if %} regions.")})
    with pytest.raises(ConfigError, match=r"templates/t/system\.jinja:2: "):
        TemplateBank.load(root)


def test_undefined_variable_at_render_names_file_and_line(tmp_path):
    bank = TemplateBank.load(_make(tmp_path, {"t": _task()}))
    t = bank.user("t")[1]
    with pytest.raises(ConfigError, match=r"templates/t/user\.jinja:2: .*undefined variable: 'region'"):
        t.render(image="<image>")


def test_sandbox_blocks_unsafe_attributes(tmp_path):
    bank = TemplateBank.load(_make(tmp_path, {"t": _task(user=BASE + [
        "{{ image.__class__.__mro__ }} {{ region }}"])}))
    with pytest.raises(ConfigError, match=r"user\.jinja:3"):
        bank.user("t")[2].render(image="<image>", region="<region>")


def test_comments_blank_lines_ids_and_reordering(tmp_path):
    lines = ["{# a comment #}", "", "Describe {{ region }} in {{ image }}.", "   ",
             "  What is {{ region }} in {{ image }}?  {# trailing comment is part of the template #}"]
    bank = TemplateBank.load(_make(tmp_path / "a", {"t": _task(user=lines)}))
    users = bank.user("t")
    assert [t.line for t in users] == [3, 5]
    assert users[0].id == template_id("t", "user", "Describe {{ region }} in {{ image }}.")
    assert users[0].id.startswith("t/user/") and len(users[0].id.split("/")[-1]) == 10
    assert users[1].render(image="I", region="R") == "What is R in I?"
    rev = TemplateBank.load(_make(tmp_path / "b", {"t": _task(user=list(reversed(lines)))}))
    assert {t.id for t in rev.user("t")} == {t.id for t in users}


def test_missing_answer_file_falls_back_to_identity(tmp_path):
    bank = TemplateBank.load(_make(tmp_path, {"t": _task(answer=None)}))
    (a,) = bank.answer("t")
    assert a.source == "{{ answer }}" and a.render(answer="42") == "42" and "t" not in bank.answer_files
    assert lint(bank, min_user=2) == []


def test_folder_and_catalogue_must_match(tmp_path):
    root = _make(tmp_path, {"t": _task(), "u": _task()})
    spec = yaml.safe_load((root / "catalog.yaml").read_text())
    (root / "catalog.yaml").write_text(yaml.safe_dump({"t": spec["t"]}))
    with pytest.raises(ConfigError, match="u: task folder"):
        TemplateBank.load(root)
    (root / "catalog.yaml").write_text(yaml.safe_dump({**spec, "v": spec["t"]}))
    with pytest.raises(ConfigError, match="v: catalogued task"):
        TemplateBank.load(root)
    (root / "notes").mkdir()  # a folder without system/user/answer.jinja is not a task folder
    (root / "catalog.yaml").write_text(yaml.safe_dump(spec))
    assert TemplateBank.load(root).tasks() == ["t", "u"]


@pytest.mark.parametrize("bad, match", [
    ({"regions": ["object"]}, "not among the variables"),
    ({"image": False}, "image: true exactly when"),
    ({"colour": "red"}, "Extra inputs"),
    ({"variables": ["image", "answer"]}, "reserved"),
])
def test_catalogue_is_validated(tmp_path, bad, match):
    task = _task()
    task["spec"].update(bad)
    with pytest.raises(ConfigError, match=match) as e:
        TemplateBank.load(_make(tmp_path, {"t": task}))
    assert "templates/catalog.yaml" in str(e.value)


def test_missing_user_file_and_missing_root(tmp_path):
    root = _make(tmp_path, {"t": _task()})
    (root / "t" / "user.jinja").unlink()
    with pytest.raises(ConfigError, match=r"templates/t/user\.jinja: <file>: missing"):
        TemplateBank.load(root)
    with pytest.raises(ConfigError, match="templates folder not found"):
        TemplateBank.load(tmp_path / "nowhere")
