"""The run configuration: a pydantic model filled from a TOML/YAML file and overridden by flags."""

from __future__ import annotations

import codecs
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from trustmh.errors import UserError

DEFAULT_CONCURRENCY = 32
# One attempt of a request may take this long in all (connect, wait, a reply that trickles in):
# 3x what a hosted model needs for a 1,024-token reply; raise it for slow local or reasoning models.
DEFAULT_REQUEST_TIMEOUT = 60.0
# With the backoff (1, 2, 4 s plus jitter) a sample on a server that hangs gives up after
# 4 x 60 s + about 10 s: at most about 4 minutes, then it is recorded as failed for the next run.
DEFAULT_MAX_RETRIES = 3
# Upper bounds that no real run comes near: a typo (an extra zero or two) is caught before the
# first request instead of exhausting file descriptors, sleeping for ever or overflowing a timer.
MAX_CONCURRENCY = 4096  # requests in flight per endpoint (each needs a socket)
MAX_COUNT = 2**31 - 1  # items, tokens, requests per minute
MAX_SECONDS = 86_400.0  # a day: longer timeouts and delays overflow asyncio's timers or never end
MAX_RETRIES = 100
MAX_SEED = 2**63 - 1  # stored as a SQLite integer; numpy seeds take any non-negative integer


class RunConfig(BaseModel):
    """Everything `trustmh run` needs. Every field can be set in the config file or by its flag."""

    # allow_inf_nan=False: `--request-timeout inf` (or nan) is refused here rather than accepted
    # and then failing every request
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

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
        le=MAX_COUNT,
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
        DEFAULT_CONCURRENCY, gt=0, le=MAX_CONCURRENCY, description="requests in flight per endpoint"
    )
    judge_concurrency: int | None = Field(
        None,
        gt=0,
        le=MAX_CONCURRENCY,
        description="judge requests in flight; default: --concurrency",
    )
    rpm: int | None = Field(
        None, gt=0, le=MAX_COUNT, description="requests per minute limit per endpoint"
    )
    tpm: int | None = Field(
        None, gt=0, le=MAX_COUNT, description="tokens per minute limit per endpoint (estimated)"
    )
    request_timeout: float = Field(
        DEFAULT_REQUEST_TIMEOUT,
        gt=0,
        le=MAX_SECONDS,
        description="seconds one attempt of a request may take in all, its reply included",
    )
    max_retries: int = Field(
        DEFAULT_MAX_RETRIES,
        ge=0,
        le=MAX_RETRIES,
        description="retries of a request after transient failures",
    )
    retry_base_delay: float = Field(
        1.0,
        ge=0,
        le=MAX_SECONDS,
        description="first backoff delay in seconds (doubles, with jitter)",
    )
    max_retry_after: float = Field(
        60.0, ge=0, le=MAX_SECONDS, description="cap on a server's Retry-After, in seconds"
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
    max_tokens: int | None = Field(
        None, gt=0, le=MAX_COUNT, description="override every task's max_tokens"
    )
    system_prompt: str | None = Field(
        None, description="replace or add the system message of every request"
    )
    seed: int = Field(
        0,
        ge=0,
        le=MAX_SEED,
        description="run seed; every random choice is seeded from (seed, sample id)",
    )
    judge_reask: bool = Field(
        False,
        description="ask the judge once more, with the rubric's stricter instruction, when its "
        "verdict does not parse (protocol 1.4 asks once; disclosed beside every number it touched)",
    )
    reask_unparsed: int = Field(
        0,
        ge=0,
        description="ask the model up to N more times when its reply does not parse (protocol 1.2; "
        "the authors' privacy runs did this; disclosed beside every number it touched)",
    )
    min_coverage: float = Field(
        0.8,
        ge=0,
        le=1,
        description="minimum parsed share of a subtask; below it the value is flagged and kept out "
        "of ranks and the radar (protocol 1.8)",
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

    @field_validator(
        "limit", "concurrency", "judge_concurrency", "rpm", "tpm", "request_timeout",
        "max_retries", "retry_base_delay", "max_retry_after", "temperature", "max_tokens", "seed",
        "epochs", mode="before",
    )  # fmt: skip
    @classmethod
    def _no_bool_for_number(cls, value: Any) -> Any:
        # pydantic reads `concurrency = true` as 1: a config's boolean is never meant as a number
        if isinstance(value, bool):
            raise ValueError("expected a number, not true/false")
        return value

    @field_validator("no_cache", mode="before")
    @classmethod
    def _only_bool(cls, value: Any) -> Any:
        # pydantic reads "off", "0" or 1 as booleans; a config states true or false
        if not isinstance(value, bool):
            raise ValueError("expected true or false")
        return value

    @field_validator(
        "run_dir", "runs_root", "cache_dir", "data_dir", "model_profiles", mode="before"
    )
    @classmethod
    def _no_nul_in_path(cls, value: Any) -> Any:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("a path cannot hold a NUL character")
        return value

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
    message = err["msg"].removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]
    return f"{source}: {name} {message} (got {_short(got)})"


def _short(value: Any, limit: int = 80) -> str:
    """A value as echoed in a one-line error: repr, cut in the middle when long."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit // 2]}...{text[-limit // 2 :]}"


_WIDE_BOMS = {
    codecs.BOM_UTF32_LE: "UTF-32",
    codecs.BOM_UTF32_BE: "UTF-32",
    codecs.BOM_UTF16_LE: "UTF-16",
    codecs.BOM_UTF16_BE: "UTF-16",
}


def decode_config_text(raw: bytes, path: Path) -> str:
    """A config file's text: UTF-8 (a leading byte-order mark is dropped). UTF-16/32 files and
    binary content get one line saying what the file is and how to fix it."""
    for bom, name in _WIDE_BOMS.items():  # UTF-32 LE starts with UTF-16 LE's mark: test it first
        if raw.startswith(bom):
            raise UserError(f"--config {path}: the file is {name}-encoded; save it as UTF-8")
    if b"\x00" in raw:
        raise UserError(
            f"--config {path}: binary content (a NUL byte at offset {raw.index(0)}); "
            "a config is a UTF-8 text file (TOML or YAML)"
        )
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"--config {path}: not UTF-8 text (invalid byte at offset {exc.start}); "
            "save it as UTF-8"
        ) from None


def _parse_settings(text: str, suffix: str) -> Any:
    """The settings of a .toml or .yaml file's text; ValueError when the text is not valid."""
    if suffix == ".toml":
        return tomllib.loads(text)  # TOMLDecodeError is a ValueError
    import yaml  # here, not at the top: 20 ms of start-up that a run without a YAML file skips

    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from exc


def load_config_file(path: Path) -> dict[str, Any]:
    """Raw settings of a TOML (.toml) or YAML (.yaml/.yml) file; UserError naming the file on failure."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(
            f"--config {path}: cannot read the file ({exc.strerror}); check the path"
        ) from None
    text = decode_config_text(raw, path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise UserError(f"--config {path}: unknown format {suffix!r}; use a .toml or .yaml file")
    try:
        data = _parse_settings(text, suffix)
    except ValueError as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"--config {path}: invalid {suffix[1:].upper()}: {detail}") from None
    except RecursionError:  # thousands of nested brackets
        raise UserError(
            f"--config {path}: invalid {suffix[1:].upper()}: nested too deeply"
        ) from None
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
