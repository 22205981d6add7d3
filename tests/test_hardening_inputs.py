"""Hostile or careless input (issue 19, items 4, 9 and 10): every flag, config file and model spec
is checked before the first request, and bad ones get one `error:` line and exit code 2, never a
traceback, a usage box, or a secret echoed back."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli
from test_cli_errors import assert_one_line_error


def run_baseline(tmp_path: Path, *args: str):
    return run_cli(
        "run", "--model", "baseline", "--tasks", "smoke", "--limit", "2",
        "--run-dir", str(tmp_path / "run"), "--no-progress", *args,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("--seed", "-1"), ("--seed", "greater than or equal to 0")),
        (("--request-timeout", "inf"), ("--request-timeout", "finite")),
        (("--request-timeout", "nan"), ("--request-timeout", "finite")),
        (("--retry-base-delay", "1e308"), ("--retry-base-delay", "less than or equal")),
        (("--concurrency", "100000000"), ("--concurrency", "less than or equal to 4096")),
        (("--judge-concurrency", "0"), ("--judge-concurrency", "greater than 0")),
        (("--limit", "99999999999999999999999"), ("--limit", "less than or equal")),
        (("--max-retries", "1000000"), ("--max-retries", "less than or equal to 100")),
        (("--concurrency", "abc"), ("--concurrency", "trustmh run --help")),
        (("--temperature", "warm"), ("--temperature", "trustmh run --help")),
        (("--no-such-flag",), ("--no-such-flag", "trustmh run --help")),
    ],
)
def test_bad_flag_values_are_one_line_before_any_work(tmp_path: Path, args, needles) -> None:
    result = run_baseline(tmp_path, *args)
    assert_one_line_error(result, *needles)
    assert "Usage:" not in result.stderr and "╭" not in result.stderr  # no usage box
    assert not (tmp_path / "run").exists()  # refused before the run directory was made


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ('model = "baseline"\nconcurrency = true\n', ("concurrency", "not true/false")),
        ('model = "baseline"\nseed = -5\n', ("seed", "greater than or equal to 0")),
        ('model = "baseline"\nrequest_timeout = inf\n', ("request_timeout", "finite")),
        ('model = "baseline"\nno_cache = "off"\n', ("no_cache", "true or false")),
        ('model = "baseline"\nrun_dir = "a\\u0000b"\n', ("run_dir", "NUL")),
        ('model = "baseline"\n[options]\nseed = -1\n', ("options.seed", "0 to")),
        ("a = " + "[" * 5000 + "]" * 5000 + "\n", ("run.toml", "invalid TOML")),
    ],
)
def test_bad_config_values(tmp_path: Path, text: str, needles) -> None:
    config = tmp_path / "run.toml"
    config.write_text(text, encoding="utf-8")
    result = run_cli("run", "--config", str(config), "--tasks", "smoke", "--limit", "2",
                     "--run-dir", str(tmp_path / "run"))  # fmt: skip
    assert_one_line_error(result, *needles)


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        ('model = "baseline"\n'.encode("utf-16"), ("UTF-16", "save it as UTF-8")),
        ('model = "baseline"\n'.encode("utf-32"), ("UTF-32", "save it as UTF-8")),
        (b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)), ("binary content",)),
        (b'model = "caf\xe9"\n', ("not UTF-8", "offset 12")),
    ],
)
def test_config_file_encodings(tmp_path: Path, content: bytes, needles) -> None:
    config = tmp_path / "run.toml"
    config.write_bytes(content)
    result = run_cli("run", "--config", str(config))
    assert_one_line_error(result, "--config", "run.toml", *needles)


def test_config_with_utf8_byte_order_mark_is_read(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_bytes(b'\xef\xbb\xbfmodel = "baseline"\ntasks = ["smoke"]\nlimit = 2\n')
    result = run_cli("run", "--config", str(config), "--run-dir", str(tmp_path / "run"),
                     "--no-progress")  # fmt: skip
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "spec",
    ["openai:x@http://[::1/v1", "openai:x@http://[::1]:99999/v1", "openai:x@http://]/v1"],
)
def test_malformed_ipv6_urls(tmp_path: Path, spec: str) -> None:
    assert_one_line_error(run_baseline(tmp_path, "--model", spec), "malformed URL")


SECRET = "sk-canary0123456789abcdef"


@pytest.mark.parametrize(
    "spec",
    [
        f"openai:m@http://127.0.0.1:8000/v1?api_key={SECRET}",
        f"openai:m@http://127.0.0.1:8000/v1?x=1&token={SECRET}",
        f"openai:m@https://example.org/v1?key={SECRET}",
        f"openai:m@https://example.org/{SECRET}/v1",
        f"openai:m@http://[::1/v1?api_key={SECRET}",  # malformed too: still never echoed
        f"opnai:m@https://example.org/v1?api_key={SECRET}",  # a typo in the backend too
        f"openai:m@https://user:{SECRET}@example.org/v1",
        SECRET,  # a key pasted where the model goes
    ],
)
def test_keys_in_urls_are_refused_and_never_echoed(tmp_path: Path, spec: str) -> None:
    for flag in ("--model", "--judge"):
        args = ("--model", spec) if flag == "--model" else ("--judge", spec)
        result = run_baseline(tmp_path, *args)
        assert_one_line_error(result, flag)
        assert SECRET not in result.stderr + result.stdout
        assert not (tmp_path / "run").exists()


def test_query_string_without_a_key_is_accepted() -> None:
    from trustmh.models.spec import parse_model_spec

    spec = parse_model_spec("openai:m@https://x.example.org/v1?api-version=2024-06-01")
    assert spec.url == "https://x.example.org/v1?api-version=2024-06-01"
