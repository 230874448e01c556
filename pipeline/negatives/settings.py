"""Validated settings of the ``negatives:`` block of sources.yaml (its ``llm`` / ``verify`` / ``offline``
sub-blocks arrive as plain dicts in :class:`pipeline.config.NegativesConfig`). Errors name the field and the fix."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OfflineSettings(_Strict):
    categories_per_image: int = Field(3, ge=0, le=80)  # image-conditioned negatives per record
    phrases_per_text: int = Field(1, ge=0, le=16)  # semantics-conditioned negatives per text


class LLMSettings(_Strict):
    base_url: str = "http://127.0.0.1:8000/v1"  # any OpenAI-compatible server: vLLM, Ollama, llama.cpp, OpenAI
    model: str = ""  # required when miner: llm
    api_key_env: str | None = "OPENAI_API_KEY"  # NAME of the environment variable holding the key; null: no key
    temperature: float = Field(0.2, ge=0.0, le=2.0)
    max_tokens: int = Field(512, ge=16, le=8192)
    json_mode: bool = True  # send response_format={"type": "json_object"} (vLLM, Ollama, llama.cpp, OpenAI know it)
    max_retries: int = Field(2, ge=0, le=10)  # transport retries (429, 5xx, timeouts) done by the openai client
    timeout: float = Field(60.0, gt=0.0)  # seconds per HTTP request
    max_reasks: int = Field(1, ge=0, le=5)  # invalid replies re-asked with the validation error fed back
    concurrency: int = Field(8, ge=1, le=256)  # requests in flight per worker (x actor-pool size across the run)
    max_calls: int | None = Field(None, ge=0)  # run-level budget of HTTP calls; null: unlimited
    max_phrases: int = Field(8, ge=1, le=64)  # phrases sent per record (one request per record)
    actors: int = Field(1, ge=1, le=64)  # Ray actor-pool size of the LLM stage (concurrency x actors in flight)


class VerifySettings(_Strict):
    checkpoint: str | None = None  # Grounding DINO .pth; null: verification off
    config: str | None = None  # model config .py; null: the SwinT-OGC config shipped in groundingdino-py
    text_encoder: str = "bert-base-uncased"  # hub name or a local folder with a BERT tokenizer + model
    box_threshold: float = Field(0.35, ge=0.0, le=1.0)  # a negative scored >= this is "found" and dropped
    image_size: int = Field(800, ge=64, le=2048)  # shorter image side fed to the detector (upstream: 800)
    max_size: int = Field(1333, ge=64, le=4096)
    device: str = "cpu"
    num_gpus: float = Field(0.0, ge=0.0)  # GPUs per verification actor (Ray)


def _parse(model: type[BaseModel], raw: dict[str, Any] | None, block: str, file: str) -> Any:
    try:
        return model.model_validate(raw or {})
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        fix = "remove it; allowed: " + ", ".join(model.model_fields) if err["type"] == "extra_forbidden" else \
            "see docs/negatives.md for the allowed values"
        raise ConfigError(file, f"negatives.{block}.{loc}", err["msg"], fix) from e


def parse_llm(raw: dict | None, file: str = "<config>") -> LLMSettings:
    return _parse(LLMSettings, raw, "llm", file)


def parse_verify(raw: dict | None, file: str = "<config>") -> VerifySettings:
    return _parse(VerifySettings, raw, "verify", file)


def parse_offline(raw: dict | None, file: str = "<config>") -> OfflineSettings:
    return _parse(OfflineSettings, raw, "offline", file)
