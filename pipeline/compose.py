"""Compose stage: one canonical record -> multi-turn dialogue rows, rendered with Jinja templates.

Per image and dialogue, a seeded generator orders the enabled tasks by weight, asks each builder for a turn
until ``max_turns`` are filled, renders a user template and an answer wrapper for each turn, renders answers in
the run's output format, and checks every row round-trips before it is kept. Everything that does not become a
row is counted with its reason.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np

from pipeline import __version__
from pipeline.config import Config
from pipeline.formats import flat_targets, render_answer, roundtrip_problem
from pipeline.formats.getok import GetokError
from pipeline.formats.trp import task_command, vd_cot
from pipeline.negatives.select import wants_negative
from pipeline.formats.segments import Ground
from pipeline.records import Record
from pipeline.schema import normalise_region, normalise_target
from pipeline.seeds import rng_for, seed_for
from pipeline.tasks import TASKS, NotApplicable, TaskContext, TurnSpec
from pipeline.templates import TemplateBank

log = logging.getLogger(__name__)

LATER_IMAGE_REFS = ("the image", "this image", "the picture", "the photo")
NEGATIVE_ANSWERS = (  # number-agnostic: the phrase may be singular or plural ("two surfboards")
    ("I cannot find ", " in the image."),
    ("The image does not contain ", "."),
    ("I don't see ", " anywhere in the image."),
    ("Nothing in the image matches ", "."),
)


class Composer:
    """Callable on a list of records; compiles its templates once (one per worker)."""

    def __init__(self, cfg: Config, bank: TemplateBank | None = None):
        self.cfg = cfg
        self.bank = bank or TemplateBank.load()
        known = set(self.bank.tasks())
        self.tasks: list[tuple[str, float]] = []
        for name in TASKS:
            tc = cfg.tasks.get(name)
            if tc is not None and (not tc.enabled or tc.weight <= 0):
                continue
            if name in known:
                self.tasks.append((name, tc.weight if tc else 1.0))
        self.grid_size = cfg.proposals.grid_size
        self.digest = self.bank.digest()
        self._mid: dict[str, list] = {}
        self.negatives_on = cfg.negatives.enabled and "negative" in known and \
            (cfg.tasks.get("negative") is None or cfg.tasks["negative"].enabled)
        self.refine_on = cfg.run.format == "getok" and "refine" in known and \
            (cfg.tasks.get("refine") is None or cfg.tasks["refine"].enabled)

    # -- one dialogue ------------------------------------------------------------------------------------------
    def _pick_turns(self, record: Record, d: int, ctx: TaskContext, stats: Counter) -> list[TurnSpec]:
        rng = rng_for(self.cfg.run.seed, record.id, d, "order")
        names = [n for n, _ in self.tasks]
        weights = np.array([w for _, w in self.tasks], dtype=float)
        keys = rng.random(len(names)) ** (1.0 / weights)  # weighted order without replacement
        turns: list[TurnSpec] = []
        for i in np.argsort(-keys, kind="stable"):
            if len(turns) >= self.cfg.run.max_turns:
                break
            name = names[i]
            out = TASKS[name](record, rng_for(self.cfg.run.seed, record.id, d, name), ctx)
            if isinstance(out, NotApplicable):
                stats[f"task.{name}.not_applicable.{out.reason}"] += 1
            else:
                turns.append(out)
        negs = record.extras.get("negatives") or []
        if self.negatives_on and negs and wants_negative(self.cfg.run.seed, record.id, d, self.cfg.negatives.share):
            neg = negs[int(rng.integers(len(negs)))]
            pre, post = NEGATIVE_ANSWERS[int(rng.integers(len(NEGATIVE_ANSWERS)))]
            spec = TurnSpec("negative", [pre, Ground([neg["phrase"]]), post], vars={"phrase": neg["phrase"]},
                            annotation_ids=[neg["text_id"]] if neg.get("text_id") else [],
                            details={"negative_kind": neg.get("kind")})
            turns.insert(int(rng.integers(len(turns) + 1)), spec)
        elif self.negatives_on and not negs and wants_negative(self.cfg.run.seed, record.id, d,
                                                               self.cfg.negatives.share):
            stats["task.negative.not_applicable.no_negatives"] += 1
        return turns

    def _refine_turn(self, spec: TurnSpec, ctx: TaskContext) -> TurnSpec | None:
        """GETok refinement follow-up: for each mask of the previous answer, its grid points' offset tokens."""
        inst = (ctx.grid or {}).get("instances", {})
        parts = []
        for g in grounds_of(spec):
            for t in g.targets:
                pairs = inst.get(t.get("instance_id"), {}).get("offsets") if g.unit == "mask" else None
                if pairs:
                    parts.append(" ".join(p + o for p, o in pairs))
        if not parts:
            return None
        return TurnSpec("refine", ["; ".join(parts)])

    def _mid_templates(self, task: str) -> list:
        """User templates whose {{ image }} sits mid-sentence: they read well when it renders 'the image'."""
        if task not in self._mid:
            tpls = self.bank.user(task)
            mid = [t for t in tpls if not t.source.strip().startswith("{{ image }}")
                   and not t.source.strip().rstrip(".?!").endswith("{{ image }}")]
            self._mid[task] = mid or tpls
        return self._mid[task]

    def _render_user(self, spec: TurnSpec, turn_index: int, image_ref: str, rng: np.random.Generator):
        if image_ref == "<image>":
            tpl = self.bank.choose("user", spec.task, rng)
        else:
            mid = self._mid_templates(spec.task)
            tpl = mid[int(rng.integers(len(mid)))]
        sentinels = {var: f"\x00{var}\x00" for var in spec.regions}
        text = tpl.render(image=image_ref, **spec.vars, **sentinels)
        order = sorted(spec.regions, key=lambda v: text.index(sentinels[v]))
        for var in order:
            text = text.replace(sentinels[var], "<region>")
        regions = [normalise_region({**spec.regions[var], "turn": turn_index}) for var in order]
        return tpl, text, regions

    def dialogue(self, record: Record, d: int, stats: Counter) -> dict | None:
        ctx = TaskContext(output_format=self.cfg.run.format, grid=record.extras.get("grid"))
        turns = self._pick_turns(record, d, ctx, stats)
        if not turns:
            stats["dialogue.skipped.no_applicable_task"] += 1
            return None
        rng = rng_for(self.cfg.run.seed, record.id, d, "render")
        w, h = record.image.width, record.image.height
        seen_tasks = list(dict.fromkeys(t.task for t in turns))
        system = "\n".join(self.bank.system(t).render() for t in seen_tasks)
        messages = [{"role": "system", "content": system}]
        regions, targets, turn_meta, ann_ids, answers = [], [], [], [], []
        for k, spec in enumerate(turns):
            image_ref = "<image>" if len(messages) == 1 else LATER_IMAGE_REFS[int(rng.integers(len(LATER_IMAGE_REFS)))]
            tpl, user_text, turn_regions = self._render_user(spec, len(messages), image_ref, rng)
            messages.append({"role": "user", "content": user_text})
            regions += turn_regions
            try:
                answer = render_answer(self.cfg.run.format, spec.answer, w, h, self.grid_size)
            except GetokError as e:
                stats[f"turn.dropped.{e}"] += 1
                messages.pop()
                regions = regions[: len(regions) - len(turn_regions)]
                continue
            wrap = self.bank.choose("answer", spec.task, rng)
            content = wrap.render(answer=answer)
            if self.cfg.run.vd_cot and self.cfg.run.format == "trp":  # the block opens the answer
                content = vd_cot(spec.answer) + content
            messages.append({"role": "assistant", "content": content})
            targets += flat_targets(spec.answer, len(messages) - 1)
            answers.append(spec.answer)
            turn_meta.append({"task": spec.task, "template_id": tpl.id, "answer_template_id": wrap.id})
            ann_ids += spec.annotation_ids
            if self.refine_on and (refine := self._refine_turn(spec, ctx)) is not None:
                tpl = self.bank.choose("user", "refine", rng)
                messages.append({"role": "user", "content": tpl.render()})
                wrap = self.bank.choose("answer", "refine", rng)
                messages.append({"role": "assistant", "content": wrap.render(answer=refine.answer[0])})
                turn_meta.append({"task": "refine", "template_id": tpl.id, "answer_template_id": wrap.id})
                answers.append(refine.answer)
        if len(messages) == 1:
            stats["dialogue.skipped.no_renderable_turn"] += 1
            return None
        if self.cfg.run.vd_cot and self.cfg.run.format == "trp":  # REF-VLM reads one Task Command per turn
            messages[0]["content"] = "".join(task_command(t["task"], a) for t, a in zip(turn_meta, answers))
        targets = [normalise_target(t) for t in targets]
        problem = roundtrip_problem(self.cfg.run.format, messages, targets, w, h, self.grid_size)
        if problem:
            stats[f"dialogue.rejected.{problem.split(':')[0]}"] += 1
            log.warning("%s#%d rejected: %s", record.id, d, problem)
            return None
        for t in turn_meta:
            stats[f"turns.{t['task']}"] += 1
        stats["dialogue.emitted"] += 1
        return {
            "id": f"{record.id}#{d}", "source": record.source, "split": record.split,
            "width": w, "height": h, "messages": messages, "regions": regions, "targets": targets,
            "turns": turn_meta,
            "provenance": {
                "record_id": record.id, "converter": record.provenance.get("converter", ""),
                "annotation_ids": list(dict.fromkeys(ann_ids)),
                "seed": seed_for(self.cfg.run.seed, record.id, d) & 0x7FFFFFFFFFFFFFFF,
                "output_format": self.cfg.run.format, "pipeline_version": __version__,
                "templates_digest": self.digest,
                "proposal_backend": (record.extras.get("grid") or {}).get("backend", "none"),
                "negative_miner": (record.extras.get("negatives_meta") or {}).get("miner", "none"),
                "details": json.dumps(_details(record), sort_keys=True),
            },
        }

    # -- a batch ----------------------------------------------------------------------------------------------
    def __call__(self, records: list[Record]) -> tuple[list[dict], Counter]:
        stats: Counter = Counter()
        rows = []
        for record in records:
            image = _image_cell(record, self.cfg.run.embed_images)
            for d in range(self.cfg.run.dialogues_per_image):
                row = self.dialogue(record, d, stats)
                if row is not None:
                    rows.append({**row, "image": image})
        return rows, stats


def grounds_of(spec: TurnSpec) -> list[Ground]:
    from pipeline.formats.segments import grounds

    return grounds(spec.answer)


def _details(record: Record) -> dict:
    out = {}
    grid = record.extras.get("grid")
    if grid:
        out["grid"] = {k: grid[k] for k in ("backend", "grid_size", "tau", "model") if k in grid}
    meta = record.extras.get("negatives_meta")
    if meta:
        out["negatives"] = meta
    return out


def _image_cell(record: Record, embed: bool) -> dict:
    path = Path(record.image.path)
    if not embed:
        return {"bytes": None, "path": str(path)}
    return {"bytes": path.read_bytes(), "path": path.name}


