"""Optional Grounding DINO check of hard negatives (extra ``[dino]``): a negative the detector finds in the image
with a score >= ``box_threshold`` is dropped (counted ``detector_found``); the rest are marked ``verified``.

Score of a phrase = max over the 900 queries and over the phrase's tokens of sigmoid(pred_logits): the best
confidence any predicted box has for that phrase (upstream ``predict`` thresholds the same logits). All negatives
of an image go into one caption ``"a . b . c ."`` (one forward pass per image, more when the caption would exceed
the text encoder's 256 tokens).

Off unless ``negatives.verify.checkpoint`` is set. A missing or unreadable checkpoint, config or text encoder is a
:class:`ConfigError` naming the field. torch / groundingdino are imported here only, lazily.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipeline.errors import ConfigError, MissingExtraError
from pipeline.negatives.settings import VerifySettings

log = logging.getLogger(__name__)

MAX_TOKENS = 250  # below the model's max_text_len (256), leaving room for [CLS] / [SEP]


def _imports():
    try:
        import torch
        from groundingdino.models import build_model
        from groundingdino.util.misc import clean_state_dict
        from groundingdino.util.slconfig import SLConfig
    except ImportError as e:
        raise MissingExtraError("Grounding DINO verification of negatives", "dino", e.name or "groundingdino") from e
    return torch, build_model, clean_state_dict, SLConfig


def default_config() -> Path:
    import groundingdino

    return Path(groundingdino.__file__).parent / "config" / "GroundingDINO_SwinT_OGC.py"


class DinoVerifier:
    """Loads the model once; :meth:`scores` runs one image."""

    def __init__(self, settings: VerifySettings, config_file: str = "<config>"):
        self.s, self.file = settings, config_file
        ckpt = Path(settings.checkpoint or "")
        if not settings.checkpoint or not ckpt.is_file():
            raise ConfigError(config_file, "negatives.verify.checkpoint", f"checkpoint not found: {ckpt}",
                              "point it at groundingdino_swint_ogc.pth, or remove it to turn verification off")
        torch, build_model, clean_state_dict, SLConfig = _imports()
        self.torch = torch
        cfg_path = Path(settings.config) if settings.config else default_config()
        if not cfg_path.is_file():
            raise ConfigError(config_file, "negatives.verify.config", f"model config not found: {cfg_path}",
                              "point it at a Grounding DINO config .py (or remove it for SwinT-OGC)")
        state = self._read_checkpoint(ckpt)  # a bad file fails before the (slow) model build
        args = SLConfig.fromfile(str(cfg_path))
        args.device = settings.device
        args.text_encoder_type = settings.text_encoder
        try:
            self.model = build_model(args)
        except (OSError, ValueError) as e:
            raise ConfigError(config_file, "negatives.verify.text_encoder",
                              f"cannot load text encoder {settings.text_encoder!r}: {e}",
                              "point it at a local folder holding a BERT tokenizer, config and weights") from e
        self._load_state(ckpt, clean_state_dict(state))
        self.model.to(settings.device).eval()
        self.tokenizer = self.model.tokenizer

    def _read_checkpoint(self, ckpt: Path) -> dict:
        torch = self.torch
        try:
            with torch.serialization.safe_globals([argparse.Namespace]):
                obj = torch.load(str(ckpt), map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises RuntimeError / UnpicklingError / EOFError... for a bad file
            raise ConfigError(self.file, "negatives.verify.checkpoint", f"cannot read checkpoint {ckpt}: "
                              f"{type(e).__name__}: {str(e)[:200]}", "re-download the checkpoint") from e
        state = obj.get("model", obj) if isinstance(obj, dict) else None
        if not isinstance(state, dict) or not state:
            raise ConfigError(self.file, "negatives.verify.checkpoint", f"{ckpt} holds no state dict",
                              "use an official Grounding DINO checkpoint (a dict with a 'model' entry)")
        return state

    def _load_state(self, ckpt: Path, state: dict) -> None:
        try:
            result = self.model.load_state_dict(state, strict=False)
        except RuntimeError as e:  # shape mismatches
            raise ConfigError(self.file, "negatives.verify.checkpoint", f"{ckpt} does not fit the model: "
                              f"{str(e)[:200]}", "check that checkpoint and config describe the same model") from e
        n_model = len(self.model.state_dict())
        if len(result.missing_keys) == n_model:
            raise ConfigError(self.file, "negatives.verify.checkpoint", f"{ckpt} matches none of the model's "
                              "weights", "check that checkpoint and config describe the same model")
        if result.missing_keys:
            log.warning("checkpoint %s: %d of %d weights missing", ckpt.name, len(result.missing_keys), n_model)
        self.loaded_keys = n_model - len(result.missing_keys)

    def _image(self, path: str):
        import groundingdino.datasets.transforms as T
        from PIL import Image

        transform = T.Compose([T.RandomResize([self.s.image_size], max_size=self.s.max_size), T.ToTensor(),
                               T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
        with Image.open(path) as im:
            tensor, _ = transform(im.convert("RGB"), None)
        return tensor

    def _batches(self, phrases: list[str]) -> list[list[int]]:
        out, cur, used = [], [], 0
        for i, p in enumerate(phrases):
            n = len(self.tokenizer.tokenize(p.lower())) + 1  # + the " ." separator
            if cur and used + n > MAX_TOKENS:
                out.append(cur)
                cur, used = [], 0
            cur.append(i)
            used += n
        return out + ([cur] if cur else [])

    def scores(self, image_path: str, phrases: list[str]) -> list[float]:
        """Detector confidence for each phrase in the image (0..1)."""
        if not phrases:
            return []
        torch = self.torch
        image = self._image(image_path).to(self.s.device)
        result = [0.0] * len(phrases)
        for batch in self._batches(phrases):
            spans, caption = [], ""
            for i in batch:
                text = " ".join(phrases[i].lower().split())
                spans.append((len(caption), len(caption) + len(text)))
                caption += text + " . "
            caption = caption.strip()
            with torch.no_grad():
                out = self.model(image[None], captions=[caption])
            logits = out["pred_logits"].sigmoid()[0]  # (queries, max_text_len)
            offsets = self.tokenizer(caption, return_offsets_mapping=True)["offset_mapping"]
            for i, (s, e) in zip(batch, spans):
                toks = [t for t, (a, b) in enumerate(offsets) if b > a and a >= s and b <= e and t < logits.shape[1]]
                result[i] = float(logits[:, toks].max()) if toks else 0.0
        return result

    def found(self, image_path: str, phrases: list[str]) -> list[bool]:
        return [s >= self.s.box_threshold for s in self.scores(image_path, phrases)]
