"""The LLM miner: rewrites a record's grounded phrases into absent ones through any OpenAI-compatible server.

One chat-completions request per record (all its phrases in one list). The reply must be JSON that
:class:`RewriteReply` accepts: as many items as inputs, each different from its input, none naming an annotated
category of the image (nor a synonym, hypernym or hyponym). An invalid reply is re-asked with the validation error
fed back, at most ``max_reasks`` times, then counted as ``invalid_reply``. Transport faults (429, 5xx, timeouts,
connection resets) are retried by the openai client itself (``max_retries``, ``timeout``); what is still failing
after that is counted with its reason. Every reply is cached by content (:mod:`pipeline.negatives.cache`), so a
rerun with a warm cache makes no HTTP call. The API key is read from the environment variable *named* in the
config and goes nowhere but the client.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ValidationError, ValidationInfo, field_validator, model_validator

from pipeline.errors import ConfigError, MissingExtraError
from pipeline.negatives.cache import ResponseCache, cache_key
from pipeline.negatives.guard import Guard
from pipeline.negatives.phrases import normalise
from pipeline.negatives.settings import LLMSettings

log = logging.getLogger(__name__)

TEMPLATE = "negatives/rewrite.jinja"
REASK_TEMPLATE = "negatives/reask.jinja"
_FENCE = re.compile(r"^\s*```[a-zA-Z]*\s*(.*?)\s*```\s*$", re.S)


class RewriteReply(BaseModel):
    """The reply schema; validation needs ``context={"inputs": [...], "guard": Guard}``."""

    rewrites: list[str]

    @field_validator("rewrites")
    @classmethod
    def _strip(cls, v: list[str]) -> list[str]:
        return [" ".join(s.split()) for s in v]

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> RewriteReply:
        inputs: list[str] = info.context["inputs"]
        guard: Guard = info.context["guard"]
        if len(self.rewrites) != len(inputs):
            raise ValueError(f"expected exactly {len(inputs)} items, got {len(self.rewrites)}")
        problems = []
        for i, (new, old) in enumerate(zip(self.rewrites, inputs)):
            if not new:
                problems.append(f"item {i} is empty")
            elif normalise(new) == normalise(old):
                problems.append(f"item {i} {new!r} is the same as its input")
            elif (bad := guard.violation(new)) is not None:
                problems.append(f"item {i} {new!r} mentions {bad!r}, which is in the image")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def parse_reply(text: str, inputs: list[str], guard: Guard) -> list[str]:
    """The validated rewrites, or ValueError with a message fit to be fed back to the model."""
    m = _FENCE.match(text)
    body = m.group(1) if m else text.strip()
    try:
        data = json.loads(body)
    except json.JSONDecodeError as e:
        raise ValueError(f"the reply is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from e
    if isinstance(data, list):
        data = {"rewrites": data}
    try:
        return RewriteReply.model_validate(data, context={"inputs": inputs, "guard": guard}).rewrites
    except ValidationError as e:
        msgs = [f"{'.'.join(str(p) for p in err['loc']) or 'reply'}: {err['msg']}".replace("Value error, ", "")
                for err in e.errors()]
        raise ValueError("; ".join(msgs)) from e


@dataclass
class Outcome:
    """What one record's request produced."""

    rewrites: list[str] | None = None
    reason: str = ""  # when rewrites is None: budget_exhausted, invalid_reply, timeout, connection, http_<code>
    detail: str = ""
    cache_key: str = ""
    stats: dict[str, int] = field(default_factory=dict)

    def count(self, name: str, n: int = 1) -> None:
        self.stats[name] = self.stats.get(name, 0) + n


def templates_hash(templates_dir: Path) -> str:
    h = hashlib.sha256()
    for name in (TEMPLATE, REASK_TEMPLATE):
        h.update((templates_dir / name).read_bytes())
    return h.hexdigest()


class LLMMiner:
    def __init__(self, settings: LLMSettings, cache: ResponseCache, templates_dir: str | os.PathLike, run_id: str,
                 config_file: str = "<config>"):
        try:
            import openai
        except ImportError as e:  # in the base install, but keep the hint if someone trimmed it
            raise MissingExtraError("the LLM negative miner", "llm", "openai") from e
        from jinja2 import FileSystemLoader, StrictUndefined
        from jinja2.exceptions import TemplateError
        from jinja2.sandbox import SandboxedEnvironment

        self.s, self.cache, self.run_id, self.file = settings, cache, run_id, config_file
        if not settings.model:
            raise ConfigError(config_file, "negatives.llm.model", "no model named for miner: llm",
                              "set the model name your server serves, e.g. model: llama3.1:8b")
        api_key = "no-key"  # servers without auth (vLLM, Ollama, llama.cpp) ignore it; the client wants a string
        if settings.api_key_env:
            api_key = os.environ.get(settings.api_key_env, "")
            if not api_key:
                raise ConfigError(config_file, "negatives.llm.api_key_env",
                                  f"environment variable {settings.api_key_env} is not set or empty",
                                  f"export {settings.api_key_env}=<key>, or api_key_env: null for a server "
                                  "without authentication")
        root = Path(templates_dir)
        env = SandboxedEnvironment(loader=FileSystemLoader(str(root)), undefined=StrictUndefined,
                                   autoescape=False, keep_trailing_newline=False)
        try:
            self.template = env.get_template(TEMPLATE)
            self.reask_template = env.get_template(REASK_TEMPLATE)
        except TemplateError as e:
            raise ConfigError(str(root / TEMPLATE), "<template>", f"cannot load: {e}",
                              "restore templates/negatives/ from the repository") from e
        self.prompt_hash = templates_hash(root)
        self.params = {"temperature": settings.temperature, "max_tokens": settings.max_tokens,
                       "json_mode": settings.json_mode}
        self._openai = openai
        self.client = openai.OpenAI(base_url=settings.base_url, api_key=api_key,
                                    max_retries=settings.max_retries, timeout=settings.timeout)

    def render(self, phrases: list[str], guard: Guard, categories: list[str]) -> str:
        return self.template.render(phrases_json=json.dumps(phrases, ensure_ascii=False), count=len(phrases),
                                    categories=categories, forbidden=guard.forbidden_terms()).strip()

    def _call(self, messages: list[dict]) -> str:
        extra = {"response_format": {"type": "json_object"}} if self.s.json_mode else {}
        resp = self.client.chat.completions.create(model=self.s.model, messages=messages,
                                                   temperature=self.s.temperature, max_tokens=self.s.max_tokens,
                                                   **extra)
        if not resp.choices:
            return ""
        return resp.choices[0].message.content or ""

    def _transport_reason(self, e: Exception) -> str:
        oa = self._openai
        if isinstance(e, oa.APITimeoutError):
            return "timeout"
        if isinstance(e, oa.APIConnectionError):
            return "connection"
        if isinstance(e, oa.APIStatusError):
            if e.status_code in (401, 403):
                raise ConfigError(self.file, "negatives.llm.api_key_env", f"the server refused the key "
                                  f"(HTTP {e.status_code})", "check the key in the named environment variable") from e
            if e.status_code == 404:
                raise ConfigError(self.file, "negatives.llm.model / base_url", "the server answered 404 "
                                  f"for model {self.s.model!r} at {self.s.base_url}",
                                  "check base_url (usually ends in /v1) and the model name") from e
            return f"http_{e.status_code}"
        return "bad_response"  # e.g. a 200 whose body is not a chat completion

    def rewrite(self, phrases: list[str], guard: Guard, categories: list[str]) -> Outcome:
        """Ask for rewrites of ``phrases`` (re-asking invalid replies); never raises for a per-record failure."""
        out = Outcome()
        messages = [{"role": "user", "content": self.render(phrases, guard, categories)}]
        error = ""
        for attempt in range(self.s.max_reasks + 1):
            key = cache_key(self.s.model, messages, self.params)
            text = self.cache.get(key)
            if text is None:
                if self.s.max_calls is not None and not self.cache.acquire(self.run_id, self.s.max_calls):
                    out.count("negatives.budget_exhausted")
                    out.reason, out.detail = "budget_exhausted", f"max_calls={self.s.max_calls} reached"
                    return out
                out.count("negatives.llm_calls")
                try:
                    text = self._call(messages)
                except self._openai.APIError as e:
                    out.reason = self._transport_reason(e)
                    out.detail = type(e).__name__
                    out.count(f"negatives.llm_error_{out.reason}")
                    log.warning("LLM request failed after the client's retries: %s", out.reason)
                    return out
                self.cache.put(key, self.s.model, self.prompt_hash, messages, text)
            else:
                out.count("negatives.cache_hits")
            try:
                out.rewrites, out.cache_key = parse_reply(text, phrases, guard), key
                return out
            except ValueError as e:
                error = str(e)
                out.count("negatives.invalid_replies")
                if attempt < self.s.max_reasks:
                    out.count("negatives.reasks")
                    reask = self.reask_template.render(error=error, count=len(phrases)).strip()
                    messages = messages + [{"role": "assistant", "content": text},
                                           {"role": "user", "content": reask}]
        out.count("negatives.invalid_reply")
        out.reason, out.detail = "invalid_reply", error[:300]
        return out

    def close(self) -> None:
        self.client.close()
