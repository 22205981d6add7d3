"""The run configuration: a pydantic model filled from a TOML/YAML file and overridden by flags."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from trustmh.errors import UserError

DEFAULT_CONCURRENCY = 32
# One attempt of a request may take this long in all (connect, wait, a reply that trickles in):
# 3x what a hosted model needs for a 1,024-token reply; raise it for slow local or reasoning models.
DEFAULT_REQUEST_TIMEOUT = 60.0
# With the backoff (1, 2, 4 s plus jitter) a sample on a server that hangs gives up after
# 4 x 60 s + about 10 s: at most about 4 minutes, then it is recorded as failed for the next run.
DEFAULT_MAX_RETRIES = 3


class RunConfig(BaseModel):
    """Everything `trustmh run` needs. Every field can be set in the config file or by its flag."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    model: str = Field(
        description="model spec, e.g. openai:gpt-4o-mini or openai:llama3@http://127.0.0.1:8000/v1"
    )
    judge: str | None = Field(
        None, description="judge model spec (the paper's judge is openai:gpt-4.1)"
    )
    simulator: str | None = Field(
        None,
        description="model spec of the simulated user that multi-step subtasks talk to "
        "(crisis.multiturn_safety), e.g. openai:gpt-4o",
    )
    tasks: list[str] = Field(
        default_factory=lambda: ["all"], description="subtask ids, pillars or all"
    )
    limit: int | None = Field(
        None,
        gt=0,
        description="at most this many items per subtask (with every variant of each item)",
    )
    run_dir: Path | None = Field(
        None, description="run directory; default runs/<timestamp>-<model>"
    )
    runs_root: Path = Field(Path("runs"), description="where new run directories are created")
    cache_dir: Path | None = Field(
        None, description="shared response cache directory; default: user cache"
    )
    no_cache: bool = Field(False, description="do not read or write the shared response cache")
    data_dir: Path | None = Field(None, description="data directory searched first")
    concurrency: int = Field(
        DEFAULT_CONCURRENCY, gt=0, description="requests in flight per endpoint"
    )
    judge_concurrency: int | None = Field(
        None, gt=0, description="judge requests in flight; default: --concurrency"
    )
    rpm: int | None = Field(None, gt=0, description="requests per minute limit per endpoint")
    tpm: int | None = Field(
        None, gt=0, description="tokens per minute limit per endpoint (estimated)"
    )
    request_timeout: float = Field(
        DEFAULT_REQUEST_TIMEOUT,
        gt=0,
        description="seconds one attempt of a request may take in all, its reply included",
    )
    max_retries: int = Field(
        DEFAULT_MAX_RETRIES, ge=0, description="retries of a request after transient failures"
    )
    retry_base_delay: float = Field(
        1.0, ge=0, description="first backoff delay in seconds (doubles, with jitter)"
    )
    max_retry_after: float = Field(
        60.0, ge=0, description="cap on a server's Retry-After, in seconds"
    )
    api_key_env: str | None = Field(
        None, description="environment variable holding the model's API key"
    )
    judge_api_key_env: str | None = Field(
        None, description="environment variable holding the judge's API key"
    )
    simulator_api_key_env: str | None = Field(
        None, description="environment variable holding the simulator's API key"
    )
    temperature: float | None = Field(None, ge=0, description="override every task's temperature")
    reasoning_effort: str | None = Field(
        None, description="reasoning effort of a reasoning model (e.g. low; see its profile)"
    )
    judge_reasoning_effort: str | None = Field(
        None, description="reasoning effort of a reasoning judge (e.g. low)"
    )
    model_profiles: Path | None = Field(
        None, description="TOML file of model parameter profiles, tried before the built-in ones"
    )
    epochs: int = Field(
        1, ge=1, description="ask every item this many times and report the spread over epochs"
    )
    max_tokens: int | None = Field(None, gt=0, description="override every task's max_tokens")
    system_prompt: str | None = Field(
        None, description="replace or add the system message of every request"
    )
    seed: int = Field(
        0, description="run seed; every random choice is seeded from (seed, sample id)"
    )
    prices: Path | None = Field(
        None,
        description="TOML file of model prices laid over the bundled table (USD per million "
        "tokens), e.g. prices.toml",
    )
    max_cost: float | None = Field(
        None,
        gt=0,
        description="stop sending requests before the run's spend (from the usage the APIs "
        "report) would pass this many US dollars",
    )
    batch: bool = Field(
        False,
        description="send the requests of openai: and anthropic: models through the providers' "
        "batch APIs (about half price; replies within 24 h)",
    )
    batch_poll: float = Field(30.0, gt=0, description="seconds between two polls of a batch")
    options: dict[str, Any] = Field(
        default_factory=dict, description="task options, e.g. {aggregate = 'mean3'}"
    )

    @field_validator("tasks", mode="before")
    @classmethod
    def _split_tasks(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value


FLAG_NAMES = {name: "--" + name.replace("_", "-") for name in RunConfig.model_fields}


def describe_validation_error(exc: ValidationError, source: str) -> str:
    """One line naming the offending key or flag and what is expected."""
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "(config)"
    if err["type"] == "extra_forbidden":
        valid = ", ".join(sorted(RunConfig.model_fields))
        return f"{source}: unknown key {key!r}; valid keys: {valid}"
    name = key if source != "flags" else FLAG_NAMES.get(key, key)
    got = err.get("input")
    return f"{source}: {name} {err['msg'].lower()} (got {got!r})"


def load_config_file(path: Path) -> dict[str, Any]:
    """Raw settings of a TOML (.toml) or YAML (.yaml/.yml) file; UserError naming the file on failure."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(
            f"--config {path}: cannot read the file ({exc.strerror}); check the path"
        ) from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            raise UserError(
                f"--config {path}: unknown format {suffix!r}; use a .toml or .yaml file"
            )
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"--config {path}: invalid {suffix[1:].upper()}: {detail}") from None
    if not isinstance(data, dict):
        raise UserError(f"--config {path}: expected a table of settings at the top level")
    return data


def build_config(file: Path | None, overrides: dict[str, Any]) -> RunConfig:
    """Merge a config file with flag overrides (flags win) and validate."""
    data: dict[str, Any] = load_config_file(file) if file else {}
    source = f"--config {file}" if file else "flags"
    try:
        RunConfig.model_validate({"model": "x", **data})  # file errors name the file
    except ValidationError as exc:
        raise UserError(describe_validation_error(exc, source)) from None
    data.update({k: v for k, v in overrides.items() if v is not None})
    if "model" not in data:
        raise UserError(
            "--model is required (e.g. --model openai:gpt-4o-mini or --model baseline), or set model in --config"
        )
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise UserError(describe_validation_error(exc, "flags")) from None
