"""Fuzzing the command line and config files (issue 19): whatever the flags or the config file
hold, `trustmh run` either succeeds or prints exactly one `error:` line and exits with 2; never a
traceback, a usage box or another exit code.

The CLI runs in-process (its real entry point, `trustmh.entry.main`) so that hundreds of inputs
take a minute; inputs that would run are kept small (the offline `baseline` model, the `smoke`
task, at most a few items) and never point at a reachable server. Examples are derandomised so CI
sees the same inputs every time."""

from __future__ import annotations

import io
import itertools
import math
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trustmh import entry

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_counter = itertools.count()


def invoke(argv: list[str]) -> tuple[int, str, str]:
    """Run `trustmh ARGV` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    saved = sys.argv
    sys.argv = ["trustmh", *argv]
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                entry.main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved
    return code, out.getvalue(), err.getvalue()


def assert_success_or_one_line(code: int, stdout: str, stderr: str, what: object) -> None:
    assert "Traceback" not in stdout + stderr, (what, stderr)
    if code == 0:
        assert "status " in stdout, (what, stdout, stderr)
        return
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2, (what, code, stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), (what, stderr)


# values a user (or a script with a bug) could pass; none makes a successful run slow
HOSTILE = [
    "", " ", "-1", "0", "1", "3", "-0", "1e309", "-1e309", "inf", "-inf", "nan", "NaN", "1e-320",
    "9" * 40, "-" + "9" * 40, "0x10", "1_000", "true", "false", "none", "abc", "２", "½", "3.5",
    "٣", "\u00a0", "'; DROP TABLE scores; --", "--", "-", "=", "${HOME}", "../..", "~", "\t",
]  # fmt: skip
SPECS = [
    "baseline", "baseline ", "", ":", "openai:", "openai:@http://h/v1", "openai:x@", "openai:x@http://[::1/v1",
    "openai:x@http://[::1]:99999/v1", "openai:x@ftp://h/v1", "openai:x@http://h:port/v1",
    "openai:x@https://example.org/v1", "openai:x@https://example.org/v1?api_key=sk-fuzz0123456789",
    "openai:x@https://u:p@example.org/v1", "anthropic:", "replay:", "replay:no-such-model", "hf:x",
    "gpt4:x", "sk-fuzz0123456789abcdef", "openai:x@http://127.0.0.1:0/v1?token=abc",
]  # fmt: skip
TASKS = ["smoke", "smoke,", ",smoke", "", ",", "nope", "privacy.nope", "smoke,smoke", " smoke "]
NUMERIC_FLAGS = ["--seed", "--concurrency", "--judge-concurrency", "--request-timeout",
                 "--max-retries", "--retry-base-delay", "--temperature", "--max-tokens", "--limit"]  # fmt: skip
SLOW_IF_SMALL = ["--rpm", "--tpm"]  # a small valid limit would make a run wait: only bad values


def numeric_value(flag: str) -> st.SearchStrategy[str]:
    valid = {
        "--seed": st.integers(0, 2**63 - 1).map(str),
        "--concurrency": st.integers(1, 64).map(str),
        "--judge-concurrency": st.integers(1, 64).map(str),
        "--request-timeout": st.floats(0.5, 600).map(repr),
        "--max-retries": st.integers(0, 3).map(str),
        "--retry-base-delay": st.floats(0, 2).map(repr),
        "--temperature": st.floats(0, 2).map(repr),
        "--max-tokens": st.integers(1, 4096).map(str),
        "--limit": st.integers(1, 3).map(str),
    }[flag]
    hostile = st.sampled_from(HOSTILE) | st.text(max_size=12).filter(lambda s: "\x00" not in s)
    big = st.integers(-(2**70), 2**70).map(str) | st.floats(allow_nan=True).map(repr)
    if flag == "--limit":  # a large valid limit would run thousands of samples
        big = big.filter(lambda s: _not_large_valid(s))
        hostile = hostile.filter(_not_large_valid)
    # about half valid, so that runs succeed often enough to exercise the whole path
    return st.sampled_from([0, 0, 1, 2]).flatmap(lambda i: (valid, valid, hostile, big)[i])


def _not_large_valid(text: str) -> bool:
    try:
        value = float(text.strip().replace("_", ""))
    except ValueError:
        return True
    return not (math.isfinite(value) and value > 3 and value == int(value) and value < 2**31)


@st.composite
def run_flags(draw) -> list[str]:
    def sometimes(strategy: st.SearchStrategy, one_in: int = 5):
        return draw(strategy) if draw(st.integers(1, one_in)) == 1 else None

    args = ["--model", sometimes(st.sampled_from(SPECS), 3) or "baseline"]
    args += ["--tasks", sometimes(st.sampled_from(TASKS), 4) or "smoke"]
    if judge := sometimes(st.sampled_from(SPECS[1:]), 6):
        args += ["--judge", judge]
    for flag in draw(st.lists(st.sampled_from(NUMERIC_FLAGS), max_size=3, unique=True)):
        args += [flag, draw(numeric_value(flag))]
    if flag := sometimes(st.sampled_from(SLOW_IF_SMALL), 6):
        args += [flag, draw(st.sampled_from([*HOSTILE[:4], "abc", "inf", "9" * 40]))]
    if env := sometimes(st.sampled_from(["", "1BAD", "NO_SUCH_VARIABLE_X", "a b"]), 6):
        args += ["--api-key-env", env]
    if extra := sometimes(
        st.sampled_from(["--bogus", "-x", "--limit", "--seed=", "--no-cache=1"]), 8
    ):
        args.append(extra)
    return args


@FUZZ
@given(flags=run_flags())
def test_fuzz_run_flags(flags: list[str], tmp_path: Path) -> None:
    run_dir = tmp_path / f"run{next(_counter)}"
    argv = ["run", *flags, "--run-dir", str(run_dir), "--cache-dir", str(tmp_path / "cache"),
            "--no-progress"]  # fmt: skip
    if "--limit" not in flags:
        argv += ["--limit", "2"]
    assert_success_or_one_line(*invoke(argv), flags)


# config values: anything TOML/YAML can hold
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
    st.text(max_size=20), st.sampled_from(HOSTILE + SPECS),
)  # fmt: skip
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)  # fmt: skip
KEYS = st.sampled_from(
    ["model", "judge", "tasks", "limit", "seed", "concurrency", "judge_concurrency", "request_timeout",
     "max_retries", "retry_base_delay", "max_retry_after", "temperature", "max_tokens", "system_prompt",
     "options", "api_key_env", "no_cache", "data_dir", "concurency", "rpm", "tpm"]
) | st.text(max_size=10)  # fmt: skip


def _slow(key: object, value: object) -> bool:
    """Settings that would make a valid run slow: small rate limits, long waits."""
    if key in ("rpm", "tpm") and isinstance(value, int) and not isinstance(value, bool):
        return 0 < value < 10**6
    return key in ("retry_base_delay", "max_retry_after", "request_timeout") and value not in (
        None,
    )


@st.composite
def config_files(draw) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["yaml", "toml", "bytes"]))
    if kind == "bytes":
        return draw(st.sampled_from([".toml", ".yaml"])), draw(st.binary(max_size=64))
    settings_ = draw(st.dictionaries(KEYS, VALUES, max_size=5))
    settings_ = {k: v for k, v in settings_.items() if not _slow(k, v)}
    if kind == "yaml":
        return ".yaml", yaml.safe_dump(settings_, allow_unicode=True).encode(
            "utf-8", "surrogatepass"
        )
    lines = [
        f"{_toml_key(k)} = {_toml_value(v)}"
        for k, v in settings_.items()
        if not isinstance(v, dict)
    ]
    return ".toml", "\n".join(lines).encode("utf-8", "surrogatepass")


def _toml_key(key: str) -> str:
    return (
        key
        if key.replace("_", "").isalnum() and key.isascii()
        else '"' + key.replace('"', "") + '"'
    )


def _toml_value(value: object) -> str:
    """A TOML-ish rendering; some renderings are invalid TOML on purpose (the parser must cope)."""
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"inf": "inf", "-inf": "-inf"}.get(
            repr(value), "nan" if value != value else repr(value)
        )
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value if not isinstance(v, dict)) + "]"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


@FUZZ
@given(config=config_files())
def test_fuzz_config_files(config: tuple[str, bytes], tmp_path: Path) -> None:
    suffix, content = config
    n = next(_counter)
    path = tmp_path / f"config{n}{suffix}"
    path.write_bytes(content)
    # the file's own values are validated before flags override them; the flags keep a valid
    # run small, offline and quick
    argv = ["run", "--config", str(path), "--model", "baseline", "--tasks", "smoke", "--limit", "2",
            "--run-dir", str(tmp_path / f"run{n}"), "--cache-dir", str(tmp_path / "cache"),
            "--no-progress"]  # fmt: skip
    assert_success_or_one_line(*invoke(argv), content[:300])


@pytest.mark.parametrize(
    "command", [["report"], ["export"], ["runs", "--runs-root"], ["data", "verify"]]
)
@FUZZ.__class__(max_examples=10, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(value=st.sampled_from(HOSTILE + ["/", "/dev/null", "/proc/self/mem", "trustmh.sqlite"]))
def test_fuzz_other_commands_paths(command: list[str], value: str, tmp_path: Path) -> None:
    code, stdout, stderr = invoke([*command, value])
    assert "Traceback" not in stdout + stderr, (command, value, stderr)
    if code != 0:
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (
            command,
            value,
            stderr,
        )
