"""Source converters. The registry below is the one place a converter is named; `sources.yaml` refers to these keys.

Adding a source: docs/adding-a-source.md.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import ConfigError

from .base import Converter, ConverterOptions, Plan, Unit
from .coco import CocoConverter
from .coco_panoptic import CocoPanopticConverter
from .flickr30k import Flickr30kConverter
from .psg import PsgConverter
from .refcoco import RefCocoConverter, RefCocogConverter, RefCocoPlusConverter

REGISTRY: dict[str, type[Converter]] = {
    "coco": CocoConverter,
    "coco_panoptic": CocoPanopticConverter,
    "flickr30k": Flickr30kConverter,
    "psg": PsgConverter,
    "refcoco": RefCocoConverter,
    "refcoco+": RefCocoPlusConverter,
    "refcocog": RefCocogConverter,
}


def get_converter(name: str, file: str = "<config>", field: str = "converter") -> type[Converter]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(file, field, f"unknown converter {name!r}",
                          f"use one of: {', '.join(sorted(REGISTRY))}") from None


def build_converter(source: str, converter: str, options: dict, base_dir: Path, file: str) -> Converter:
    cls = get_converter(converter, file, f"sources.{source}.converter")
    return cls.from_config(source, options, base_dir, file)


__all__ = ["REGISTRY", "Converter", "ConverterOptions", "Plan", "Unit", "build_converter", "get_converter"]
