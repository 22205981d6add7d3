"""Bad input reaches the user as one clear line on stderr, exit code 2, and no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli


def assert_one_line_error(result, *needles: str) -> None:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def run_smoke(tmp_path: Path, *args: str, env: dict[str, str] | None = None):
    return run_cli(
        "run",
        "--tasks",
        "smoke",
        "--limit",
        "3",
        "--run-dir",
        str(tmp_path / "run"),
        *args,
        env=env,
    )


def test_unknown_backend_prefix(tmp_path: Path) -> None:
    result = run_smoke(tmp_path, "--model", "gpt4:foo")
    assert_one_line_error(result, "--model", "unknown backend 'gpt4'", "openai:MODEL@URL")


def test_malformed_url(tmp_path: Path) -> None:
    result = run_smoke(tmp_path, "--model", "openai:llama3@localhost:8000/v1")
    assert_one_line_error(result, "malformed URL", "http(s)://")


def test_bad_port_in_url(tmp_path: Path) -> None:
    result = run_smoke(tmp_path, "--model", "openai:llama3@http://127.0.0.1:99999/v1")
    assert_one_line_error(result, "malformed URL")


def test_missing_api_key_variable(tmp_path: Path) -> None:
    env = {"OPENAI_API_KEY": ""}
    result = run_smoke(tmp_path, "--model", "openai:gpt-4o-mini", env=env)
    assert_one_line_error(result, "OPENAI_API_KEY is not set", "--api-key-env")


def test_named_api_key_variable_missing(tmp_path: Path) -> None:
    result = run_smoke(
        tmp_path,
        "--model",
        "openai:deepseek-chat@https://api.deepseek.com/v1",
        "--api-key-env",
        "TRUSTMH_TEST_NO_SUCH_KEY",
    )
    assert_one_line_error(result, "TRUSTMH_TEST_NO_SUCH_KEY is not set")


def test_remote_url_without_key_flag(tmp_path: Path) -> None:
    result = run_smoke(tmp_path, "--model", "openai:deepseek-chat@https://api.deepseek.com/v1")
    assert_one_line_error(result, "needs an API key", "--api-key-env")


def test_unreadable_config(tmp_path: Path) -> None:
    result = run_cli("run", "--config", str(tmp_path / "missing.toml"))
    assert_one_line_error(result, "--config", "missing.toml", "cannot read")


def test_invalid_toml_config(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text('model = "baseline"\ntasks = [smoke\n')
    result = run_cli("run", "--config", str(config))
    assert_one_line_error(result, "run.toml", "invalid TOML")


def test_invalid_yaml_config(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("model: baseline\ntasks: [smoke\n")
    result = run_cli("run", "--config", str(config))
    assert_one_line_error(result, "run.yaml", "invalid YAML")


def test_unknown_config_key(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text('model = "baseline"\nconcurency = 8\n')
    result = run_cli("run", "--config", str(config))
    assert_one_line_error(result, "run.toml", "unknown key 'concurency'", "concurrency")


def test_wrong_type_in_config(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("model: baseline\nconcurrency: many\n")
    result = run_cli("run", "--config", str(config))
    assert_one_line_error(result, "run.yaml", "concurrency")


@pytest.mark.parametrize("value", ["0", "-3"])
def test_non_positive_concurrency(tmp_path: Path, value: str) -> None:
    result = run_smoke(tmp_path, "--model", "baseline", "--concurrency", value)
    assert_one_line_error(result, "--concurrency", "greater than 0")


def test_unknown_task(tmp_path: Path) -> None:
    result = run_smoke(tmp_path, "--model", "baseline", "--tasks", "privacy.nope")
    assert_one_line_error(result, "privacy.nope", "trustmh tasks")


def test_missing_model(tmp_path: Path) -> None:
    result = run_cli("run", "--tasks", "smoke")
    assert_one_line_error(result, "--model is required")


def test_config_file_and_flag_override(tmp_path: Path) -> None:
    """A valid config runs, and a flag overrides the file (limit 5 in the file, 2 on the command line)."""
    config = tmp_path / "run.toml"
    config.write_text('model = "baseline"\ntasks = "smoke"\nlimit = 5\n')
    result = run_cli(
        "run",
        "--config",
        str(config),
        "--limit",
        "2",
        "--run-dir",
        str(tmp_path / "r"),
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    assert "samples 2 " in result.stdout


def test_help_documents_every_option() -> None:
    result = run_cli("run", "--help")
    assert result.returncode == 0
    from trustmh.config import RunConfig

    for name in RunConfig.model_fields:
        if name in ("options", "max_retry_after"):
            continue  # config-file only settings
        assert "--" + name.replace("_", "-") in result.stdout, name
    assert "Examples" in result.stdout


def test_credentials_in_url_are_refused_and_not_echoed(tmp_path: Path) -> None:
    result = run_smoke(
        tmp_path, "--model", "openai:m@https://user:sk-SECRET-XYZ@api.example.com/v1"
    )
    assert_one_line_error(result, "carries credentials", "--api-key-env")
    assert "sk-SECRET-XYZ" not in result.stderr + result.stdout


def test_run_dir_that_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "run"
    blocker.write_text("not a folder")
    result = run_cli(
        "run", "--model", "baseline", "--tasks", "smoke", "--limit", "2", "--run-dir", str(blocker)
    )
    assert_one_line_error(result, "--run-dir", "cannot write there", "another directory")
