"""The canonical image record: the one type every converter yields and every stage reads.

One `Record` is one image of one source. Pixel coordinates are floats in the image's own frame, boxes are
``[x1, y1, x2, y2]``; masks are COCO RLE with *compressed* string counts (converters normalise
uncompressed / polygon input through :mod:`pipeline.rle`).

Changing these models changes every converter and stage: do it deliberately, bump ``RECORD_VERSION``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RECORD_VERSION = "1"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class RLE(_Model):
    """COCO run-length encoding, compressed string form; ``size`` is ``[height, width]``."""

    size: tuple[int, int]
    counts: str


class ImageRef(_Model):
    path: str  # absolute path of the image file as read (inside the source's image root)
    sha256: str
    width: int
    height: int


class Instance(_Model):
    id: str  # the source's own annotation / segment id, as a string
    category: str  # human-readable class name ("dog", "tree-merged")
    category_id: int | None = None  # the source's own category id
    supercategory: str | None = None
    box: tuple[float, float, float, float]  # xyxy pixels, inside the image
    mask: RLE | None = None
    area: float = 0.0  # pixels of the mask if there is one, else of the box
    iscrowd: bool = False  # crowd regions are kept (counted, drawn) but never become targets
    isthing: bool = True  # False for panoptic "stuff"
    keypoints: list[float] | None = None  # flat [x, y, v] * K, v in {0, 1, 2} (COCO)
    num_keypoints: int = 0


class Span(_Model):
    """A grounded phrase inside a text: ``text[start:end]`` refers to ``instance_ids`` (may be empty)."""

    start: int
    end: int
    instance_ids: list[str] = Field(default_factory=list)
    phrase_type: str | None = None  # e.g. Flickr30k "people", "notvisual"
    chain_id: str | None = None


class Text(_Model):
    id: str
    kind: Literal["caption", "refexp", "grounded_caption", "region_description"]
    text: str
    instance_ids: list[str] = Field(default_factory=list)  # refexp / region_description: what it refers to
    spans: list[Span] = Field(default_factory=list)  # grounded_caption: phrases with character spans


class Relation(_Model):
    subject: str  # instance id
    predicate: str
    object: str  # instance id


class Skip(_Model):
    """One input item that was not used, with a named reason. Counted in the run report."""

    source: str
    kind: Literal["image", "annotation", "text", "relation", "file"]
    item_id: str
    reason: str
    detail: str = ""


class Record(_Model):
    id: str  # "source/split/original_id"
    source: str
    split: str
    image: ImageRef
    instances: list[Instance] = Field(default_factory=list)
    texts: list[Text] = Field(default_factory=list)
    relations: list[Relation] = Field(default_factory=list)
    provenance: dict[str, str] = Field(default_factory=dict)  # source_file, original image id, licence...
    skips: list[Skip] = Field(default_factory=list)  # sub-record items dropped while building this record
    # stage outputs attached later (proposals, grid tokens, negatives) live under `extras`, keyed by stage name
    extras: dict[str, object] = Field(default_factory=dict)

    def instance(self, instance_id: str) -> Instance:
        for inst in self.instances:
            if inst.id == instance_id:
                return inst
        raise KeyError(f"{self.id}: no instance {instance_id!r}")

    def targetable(self) -> list[Instance]:
        """Instances that may become answer targets: every non-crowd instance."""
        return [i for i in self.instances if not i.iscrowd]


def record_id(source: str, split: str, original_id: object) -> str:
    return f"{source}/{split}/{original_id}"
