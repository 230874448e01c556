"""Reading source images safely: path containment, hashing, decoding check. Pure, no Ray."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from pipeline.records import ImageRef


class ImageError(ValueError):
    """An image cannot be used; ``reason`` becomes the skip reason."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def safe_join(root: Path, file_name: str) -> Path:
    """``root / file_name``, refusing absolute names, ``..`` escapes and symlinks that leave ``root``."""
    if not isinstance(file_name, str) or not file_name:
        raise ImageError("bad_file_name", repr(file_name))
    if "\x00" in file_name:
        raise ImageError("unsafe_path", "NUL byte in file name")
    rel = Path(file_name)
    if rel.is_absolute() or file_name.startswith(("/", "\\")):
        raise ImageError("unsafe_path", f"absolute path {file_name!r}")
    root_res = root.resolve()
    candidate = (root / rel).resolve()
    if not candidate.is_relative_to(root_res):
        raise ImageError("unsafe_path", f"{file_name!r} resolves outside the image root")
    return candidate


def load_image_ref(root: Path, file_name: str, expect_hw: tuple[int, int] | None = None) -> ImageRef:
    """Locate, hash and check one image. Raises ImageError(reason) for a missing / corrupt / mismatched file."""
    path = safe_join(root, file_name)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError("image_missing", str(path)) from None
    except IsADirectoryError:
        raise ImageError("image_missing", f"{path} is a directory") from None
    except PermissionError as e:
        raise ImageError("image_unreadable", str(e)) from None
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()  # full decode: a truncated file fails here, not in a training job
            width, height = im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageError("image_corrupt", f"{path.name}: {e}") from None
    if expect_hw is not None and (height, width) != tuple(expect_hw):
        raise ImageError("image_size_mismatch",
                         f"{path.name}: file is {height}x{width} (h x w), annotations say {expect_hw[0]}x{expect_hw[1]}")
    return ImageRef(path=str(path), sha256=hashlib.sha256(data).hexdigest(), width=width, height=height)
