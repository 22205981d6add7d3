"""`--max-cost`: the run stops sending before its spend, priced from the usage the server
reports, would pass the cap; it stays resumable, says where it stopped, and a rerun with a higher
cap finishes it without asking anything twice."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from conftest import run_cli

N = 120
PRICE = 1000.0  # USD per million tokens, in and out: $0.001 a token, so a few requests cost cents


def spend(server) -> float:
    """What the requests the server answered cost, from the usage it reported."""
    tokens = sum(
        e["prompt_tokens"] + e["completion_tokens"] for e in server.log() if e["outcome"] == "ok"
    )
    return tokens * PRICE / 1e6


def scored(run_dir: Path) -> int:
    with sqlite3.connect(run_dir / "trustmh.sqlite") as conn:
        return conn.execute("SELECT COUNT(*) FROM scores").fetchone()[0]


def test_max_cost_stops_before_the_cap_and_a_rerun_finishes(fake_openai, tmp_path: Path) -> None:
    spec = f"openai:test-model@{fake_openai.base_url}"
    prices = tmp_path / "prices.toml"
    prices.write_text(f'[models]\n"{spec}" = {{ input = {PRICE}, output = {PRICE} }}\n')
    run_dir = tmp_path / "run"
    args = ["run", "--model", spec, "--tasks", "smoke", "--limit", str(N), "--run-dir", str(run_dir),
            "--cache-dir", str(tmp_path / "cache"), "--prices", str(prices), "--concurrency", "4",
            "--no-progress"]  # fmt: skip
    cap = 0.5
    first = run_cli(*args, "--max-cost", str(cap))
    assert first.returncode == 3, first.stderr
    assert "Stopped before the cost cap" in first.stderr and "--max-cost" in first.stderr
    assert "stopped: spent $" in first.stdout
    paid = spend(fake_openai)
    assert 0 < paid <= cap  # stopped before the cap, after doing some of the work
    done = scored(run_dir)
    assert 0 < done < N
    sent = len(fake_openai.log())

    # the same cap again: the spend so far counts, so it sends almost nothing more
    again = run_cli(*args, "--max-cost", str(cap))
    assert again.returncode == 3 and spend(fake_openai) <= cap

    final = run_cli(*args, "--max-cost", "1000")
    assert final.returncode == 0, final.stderr
    assert scored(run_dir) == N
    prompts = [e["prompt_hash"] for e in fake_openai.log()]
    assert len(prompts) == len(set(prompts)) == N  # nothing asked twice
    assert sent < N


def test_max_cost_needs_a_price_for_a_paid_api(tmp_path: Path) -> None:
    result = run_cli("run", "--model", "openai:my-model@https://api.example.com/v1", "--api-key-env", "none",
                     "--tasks", "smoke", "--max-cost", "5", "--run-dir", str(tmp_path / "r"))  # fmt: skip
    assert result.returncode == 2
    assert "--max-cost: openai:my-model@https://api.example.com/v1: no price" in result.stderr
