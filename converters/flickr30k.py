"""Flickr30k Entities (``Sentences/<id>.txt`` + optional ``Annotations/<id>.xml``) -> grounded-caption records.

Each sentence line holds phrases ``[/EN#<chain>/<type>[/<type>...] <words>]``. A Text(kind="grounded_caption")
carries the clean sentence (markup removed, tokens joined by single spaces) and one Span per phrase with its
character range, type(s) (``bodyparts/people``), chain id and the boxes of that chain. Boxes come from the xml:
one ``<object>`` with a ``<bndbox>`` is one Instance, listed under every chain named in its ``<name>`` tags; xml
coordinates are 1-based inclusive pixels, so ``xmin`` becomes ``xmin - 1`` and ``xmax`` stays (continuous xyxy).
Chain 0 (``notvisual``), ``<scene>`` / ``<nobndbox>`` chains and chains without an xml keep their spans with empty
``instance_ids``. Recipe: docs/sources/flickr30k.md.

Accounting: ``inputs["image"]`` = sentence files, ``"text"`` = sentence lines, ``"annotation"`` = xml boxes.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

from pipeline.errors import InputFileError
from pipeline.images import ImageError, load_image_ref
from pipeline.records import Instance, Record, Skip, Span, Text, record_id

from .base import Converter, ConverterOptions, Plan, Unit

_PHRASE = re.compile(r"\[/EN#([0-9]+)((?:/[^\s/\[\]]+)+) ([^\[\]]*)\]")


class FlickrSentenceError(ValueError):
    pass


def parse_sentence(line: str) -> tuple[str, list[tuple[int, int, str, str]]]:
    """``line`` -> (clean text, [(start, end, chain_id, phrase_type)]). Raises FlickrSentenceError(reason)."""
    pieces: list[tuple[str, tuple[str, str] | None]] = []  # (text, (chain, type) for a phrase)
    pos = 0
    for m in _PHRASE.finditer(line):
        pieces.append((line[pos:m.start()], None))
        words = " ".join(m.group(3).split())
        if not words:
            raise FlickrSentenceError("empty_phrase")
        pieces.append((words, (m.group(1), m.group(2)[1:])))
        pos = m.end()
    pieces.append((line[pos:], None))
    out, spans = "", []
    for text, phrase in pieces:
        if phrase is None:
            if "[" in text:
                raise FlickrSentenceError("unclosed_bracket" if "]" not in text[text.index("["):] else "bad_phrase_markup")
            if "]" in text:
                raise FlickrSentenceError("unmatched_bracket")
            words = text.split()
            if words:
                out += (" " if out else "") + " ".join(words)
        else:
            out += " " if out else ""
            spans.append((len(out), len(out) + len(text), phrase[0], phrase[1]))
            out += text
    if not out:
        raise FlickrSentenceError("text_empty")
    return out, spans


def parse_annotation_xml(path: Path) -> dict:
    """The official layout: ``<size>``, ``<object>`` with ``<name>``+ and ``<bndbox>`` or ``<nobndbox>``/``<scene>``.

    Returns {"width", "height", "boxes": [(object_index, [chain ids], [xmin, ymin, xmax, ymax] as in the file)],
    "scene": [chain ids], "nobox": [chain ids]}. Raises InputFileError naming the file when it does not parse.
    """
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise InputFileError(str(path), f"not a readable Flickr30k Entities xml: {e}") from None
    try:
        size = root.find("size")
        width, height = int(size.findtext("width")), int(size.findtext("height"))
    except (AttributeError, TypeError, ValueError):
        raise InputFileError(str(path), "<size> with integer <width> and <height> is required") from None
    out: dict = {"width": width, "height": height, "boxes": [], "scene": [], "nobox": []}
    for k, obj in enumerate(root.findall("object")):
        names = [(n.text or "").strip() for n in obj.findall("name")]
        bnd = obj.find("bndbox")
        if bnd is not None:
            try:
                coords = [float(bnd.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")]
            except (TypeError, ValueError):
                coords = None  # a bad box is a counted skip, not a file error
            out["boxes"].append((k, names, coords))
            continue
        for flag, key in (("nobndbox", "nobox"), ("scene", "scene")):
            if (obj.findtext(flag) or "0").strip() not in ("0", ""):
                out[key] += names
    return out


class Flickr30kOptions(ConverterOptions):
    sentences: str  # the Sentences/ folder
    image_root: str  # flickr30k-images/
    annotations: str | None = None  # the Annotations/ folder (optional: without it spans stay ungrounded)
    image_list: str | None = None  # train.txt / val.txt / test.txt: only these ids (default: every sentence file)
    split: str = "train"
    file_pattern: str = "{image_id}.jpg"


class Flickr30kConverter(Converter):
    name: ClassVar[str] = "flickr30k"
    version: ClassVar[str] = "1"
    Options = Flickr30kOptions
    path_fields = ("sentences", "image_root", "annotations", "image_list")
    options: Flickr30kOptions

    def input_files(self) -> list[Path]:
        o = self.options
        files = sorted(self.path(o.sentences).glob("*.txt"))
        if o.annotations:
            files += sorted(self.path(o.annotations).glob("*.xml"))
        return files + ([self.path(o.image_list)] if o.image_list else [])

    def _read_unit(self, image_id: str) -> dict:
        """Sentence lines (+ xml) of one image. Whole-file problems raise InputFileError naming the file."""
        o = self.options
        path = self.path(o.sentences) / f"{image_id}.txt"
        try:
            lines = [ln for ln in path.read_bytes().decode("utf-8").splitlines() if ln.strip()]
        except OSError as e:
            raise InputFileError(str(path), f"cannot read: {e.strerror}") from e
        except UnicodeDecodeError as e:
            raise InputFileError(str(path), f"not valid UTF-8 at byte {e.start}") from e
        xml = None
        if o.annotations and (xp := self.path(o.annotations) / f"{image_id}.xml").is_file():
            xml = parse_annotation_xml(xp)
        return {"lines": lines, "xml": xml}

    def _load(self) -> dict:
        if self._index is not None:
            return self._index
        o = self.options
        if o.image_list:
            try:
                ids = self.path(o.image_list).read_text(encoding="utf-8").split()
            except (OSError, UnicodeDecodeError) as e:
                raise InputFileError(str(self.path(o.image_list)), f"cannot read the image list: {e}") from None
        else:
            ids = [p.stem for p in self.path(o.sentences).glob("*.txt")]
        ids = sorted(set(ids), key=lambda s: (len(s), s))
        units, inputs = {}, defaultdict(int)
        for image_id in ids:
            units[image_id] = unit = self._read_unit(image_id)
            inputs["image"] += 1
            inputs["text"] += len(unit["lines"])
            inputs["annotation"] += len(unit["xml"]["boxes"]) if unit["xml"] else 0
        plan = Plan(units=[Unit(split=o.split, key=i) for i in ids], inputs=dict(inputs))
        self._index = {"units": units, "plan": plan}
        return self._index

    def plan(self) -> Plan:
        return self._load()["plan"]

    def convert(self, keys: Sequence[str]) -> Iterator[Record | Skip]:
        units = self._index["units"] if self._index is not None else {}
        for key in keys:  # a worker without the planned index reads only its own units' files
            out = self._convert_one(key, units.get(key) or self._read_unit(key))
            yield from (out if isinstance(out, list) else [out])

    def image_ref(self, image_id: str, expect_hw: tuple[int, int] | None):
        """Hash and check the image (overridden by the benchmark to time conversion without image IO)."""
        return load_image_ref(self.path(self.options.image_root), self.options.file_pattern.format(image_id=image_id),
                              expect_hw=expect_hw)

    def _convert_one(self, image_id: str, unit: dict) -> Record | list[Skip]:
        src, o, xml = self.source, self.options, unit["xml"]
        try:
            ref = self.image_ref(image_id, (xml["height"], xml["width"]) if xml else None)
        except ImageError as e:
            out = [Skip(source=src, kind="image", item_id=image_id, reason=e.reason, detail=e.detail)]
            out += [Skip(source=src, kind="text", item_id=f"{image_id}:{i}", reason=f"image_{e.reason}")
                    for i in range(len(unit["lines"]))]
            out += [Skip(source=src, kind="annotation", item_id=f"{image_id}:{b[0]}", reason=f"image_{e.reason}")
                    for b in (xml["boxes"] if xml else [])]
            return out
        skips: list[Skip] = []
        parsed: list[tuple[int, str, list]] = []
        chain_type: dict[str, str] = {}
        for i, line in enumerate(unit["lines"]):
            try:
                text, spans = parse_sentence(line)
            except FlickrSentenceError as e:
                skips.append(Skip(source=src, kind="text", item_id=f"{image_id}:{i}", reason=str(e), detail=line[:200]))
                continue
            parsed.append((i, text, spans))
            for _, _, chain, ptype in spans:
                chain_type.setdefault(chain, ptype.split("/")[0])
        instances, by_chain = self._boxes(image_id, xml, ref.width, ref.height, chain_type, skips)
        texts = [Text(id=f"{image_id}:{i}", kind="grounded_caption", text=text,
                      spans=[Span(start=s, end=e, chain_id=c, phrase_type=t,
                                  instance_ids=[] if c == "0" else by_chain.get(c, [])) for s, e, c, t in spans])
                 for i, text, spans in parsed]
        prov = {"converter": f"{self.name}@{self.version}", "image_id": image_id,
                "source_file": f"Sentences/{image_id}.txt", "grounded": "yes" if xml else "no (no xml)"}
        if xml:
            prov.update(scene_chains=",".join(xml["scene"]), nobox_chains=",".join(xml["nobox"]))
        return Record(id=record_id(src, o.split, image_id), source=src, split=o.split, image=ref,
                      instances=instances, texts=texts, skips=skips, provenance=prov)

    def _boxes(self, image_id: str, xml: dict | None, w: int, h: int, chain_type: dict[str, str],
               skips: list[Skip]) -> tuple[list[Instance], dict[str, list[str]]]:
        instances, by_chain = [], defaultdict(list)
        for k, names, coords in (xml["boxes"] if xml else []):
            iid = f"{image_id}:{k}"

            def skip(reason: str, detail: str = "") -> None:
                skips.append(Skip(source=self.source, kind="annotation", item_id=iid, reason=reason, detail=detail))

            if coords is None or not names or not all(n.isdigit() for n in names):
                skip("bad_box", f"names {names}, coords {coords}")
                continue
            x1, y1, x2, y2 = coords[0] - 1, coords[1] - 1, coords[2], coords[3]
            if x2 <= x1 or y2 <= y1:
                skip("zero_area_box", f"{coords}")
            elif x1 < -1 or y1 < -1 or x2 > w + 1 or y2 > h + 1:
                skip("box_out_of_bounds", f"{coords} (1-based) in {w}x{h}")
            else:
                box = (max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2))
                instances.append(Instance(id=iid, category=chain_type.get(names[0], "entity"), box=box,
                                          area=(box[2] - box[0]) * (box[3] - box[1])))
                for n in names:
                    by_chain[n].append(iid)
        return instances, dict(by_chain)
