"""The perturbation engine (protocol 8.2): property tests (hypothesis) and the operators' rules,
plus `trustmh perturb`."""

from __future__ import annotations

import json
import re

import pytest
from conftest import run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trustmh.errors import UserError
from trustmh.transforms.perturb import (
    DEFAULT_LEVELS,
    KEYBOARD,
    LOOKALIKES,
    SYMBOLS,
    irrelevant_sentences,
    parse_level,
    parse_levels,
    perturb,
    perturb_levels,
)
from trustmh.transforms.segment import split_words

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FRACTION_OPS = ("char", "word", "typo")

# Realistic user text (English and Chinese words, punctuation, spaces, newlines) mixed with
# arbitrary Unicode, so both the common path and odd characters are exercised.
_WORDS = st.sampled_from(
    ["I", "feel", "so", "tired", "can't", "sleep", "anymore", "my", "job", "is", "19", "OK",
     "我", "最近", "很", "难过", "不想", "说话", "睡不着", "Straße", "naïve"]
)  # fmt: skip
_SEPS = st.sampled_from([" ", " ", " ", ", ", ". ", "! ", "? ", "\n", "。", "，", "  ", " - "])
realistic = st.lists(st.tuples(_WORDS, _SEPS), max_size=40).map(
    lambda pairs: "".join(w + s for w, s in pairs)
)
anything = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=120)
texts = st.one_of(realistic, realistic, anything)
parts_strategy = st.lists(texts, min_size=1, max_size=4)
seeds = st.integers(min_value=0, max_value=2**32)
sample_ids = st.text(max_size=12)


def _level(op: str, x: float) -> str:
    return f"{op}@{x:.3f}" if op != "sentence" else f"sentence@{int(x)}"


def _allowed_chars(text: str, op: str) -> set[str]:
    """Characters an operator may put in its output: the input's own (and their other case),
    plus what the operator itself adds."""
    allowed = set(text) | {c for ch in text for c in ch.swapcase()} | {" "}
    if op == "char":
        allowed |= set(SYMBOLS) | set(LOOKALIKES.values())
    if op == "typo":
        allowed |= set(KEYBOARD) | {k.upper() for k in KEYBOARD}
    if op == "sentence":
        allowed |= {c for lang in ("en", "zh") for s in irrelevant_sentences(lang) for c in s}
    return allowed


@PROPERTY
@given(parts_strategy, seeds, sample_ids, st.sampled_from([*FRACTION_OPS, "sentence"]))
def test_same_seed_same_text_and_log(parts, seed, sample_id, op) -> None:
    level = _level(op, 2 if op == "sentence" else 0.3)
    first = perturb(parts, level, run_seed=seed, sample_id=sample_id, segmenter="chars")
    again = perturb(list(parts), level, run_seed=seed, sample_id=sample_id, segmenter="chars")
    assert first == again
    assert first.record() == again.record()
    json.dumps(first.record())  # storable as is


@PROPERTY
@given(parts_strategy, seeds, sample_ids, st.sampled_from([*FRACTION_OPS, "sentence"]))
def test_intensity_zero_is_the_identity(parts, seed, sample_id, op) -> None:
    result = perturb(parts, f"{op}@0", run_seed=seed, sample_id=sample_id)
    assert result.parts == tuple(parts)
    assert result.log == ()


@PROPERTY
@given(
    parts_strategy,
    seeds,
    st.sampled_from(FRACTION_OPS),
    st.floats(min_value=0, max_value=1),
    st.floats(min_value=0, max_value=1),
)
def test_higher_intensity_makes_every_lower_edit_and_more(parts, seed, op, a, b) -> None:
    low, high = sorted((a, b))
    lower = perturb(parts, _level(op, low), run_seed=seed, sample_id="s", segmenter="chars")
    higher = perturb(parts, _level(op, high), run_seed=seed, sample_id="s", segmenter="chars")
    assert higher.log[: len(lower.log)] == lower.log
    units = sum(len(re.findall(r"\w", p)) for p in parts)  # upper bound of the touched units
    assert len(lower.log) <= len(higher.log) <= units


@PROPERTY
@given(parts_strategy, seeds, st.integers(0, 10), st.integers(0, 10))
def test_more_sentences_keep_the_earlier_insertions(parts, seed, a, b) -> None:
    low, high = sorted((a, b))
    lower = perturb(parts, f"sentence@{low}", run_seed=seed, sample_id="s")
    higher = perturb(parts, f"sentence@{high}", run_seed=seed, sample_id="s")
    assert higher.log[:low] == lower.log and len(higher.log) == high
    assert sum(map(len, higher.parts)) >= sum(map(len, lower.parts))


@PROPERTY
@given(
    parts_strategy,
    seeds,
    st.sampled_from([*FRACTION_OPS, "sentence"]),
    st.floats(min_value=0, max_value=1),
)
def test_output_is_valid_text(parts, seed, op, x) -> None:
    level = _level(op, round(x * 5) if op == "sentence" else x)
    result = perturb(parts, level, run_seed=seed, sample_id="s", segmenter="chars")
    assert len(result.parts) == len(parts)
    for before, after in zip(parts, result.parts, strict=True):
        assert isinstance(after, str)
        after.encode("utf-8")  # no lone surrogates
        if any(c.isalnum() for c in before):
            assert after.strip(), "a part with words is never emptied"
        assert set(after) <= _allowed_chars(before, op)


@PROPERTY
@given(parts_strategy, seeds)
def test_the_default_levels_nest(parts, seed) -> None:
    by_name = {
        p.level: p for p in perturb_levels(parts, DEFAULT_LEVELS, run_seed=seed, sample_id="s")
    }
    chain = [lv.name for lv in DEFAULT_LEVELS]
    for a, b in [(chain[0], chain[1]), (chain[1], chain[2]), (chain[1], chain[3]),
                 (chain[3], chain[4]), (chain[4], chain[5])]:  # fmt: skip
        assert by_name[b].log[: len(by_name[a].log)] == by_name[a].log


def test_share_of_touched_characters_follows_the_intensity() -> None:
    text = "I have been feeling really low for weeks and I do not know who to talk to. " * 4
    units = sum(c.isalnum() for c in text)
    for x in (0.05, 0.1, 0.2):
        result = perturb(text, f"char@{x}", run_seed=3, sample_id="a")
        assert len(result.log) == round(x * units)
        assert len({entry.split()[1] for entry in result.log}) == len(result.log)  # distinct units
    words = len(split_words(text).words)
    assert len(perturb(text, "word@0.1", run_seed=3, sample_id="a").log) == round(0.1 * words)


def test_seed_sample_and_operator_each_change_the_stream() -> None:
    text = "Nobody at work notices how hard I try, and I am starting to give up on it."
    base = perturb(text, "char@0.2", run_seed=0, sample_id="a")
    assert perturb(text, "char@0.2", run_seed=1, sample_id="a").parts != base.parts
    assert perturb(text, "char@0.2", run_seed=0, sample_id="b").parts != base.parts
    assert base.seeds["char"] != perturb(text, "word@0.2", run_seed=0, sample_id="a").seeds["word"]


def expected_char_edit(text: str, kind: str, pos: int, param: str | None) -> str:
    """The text after one char edit, written out by hand."""
    ch, head, tail = text[pos], text[:pos], text[pos + 1 :]
    if kind == "case":
        return head + ch.upper() + tail
    if kind == "repeat":
        return head + ch * int(param or 0) + tail
    if kind == "delete":
        return head + tail
    if kind == "symbol":
        return head + (param or "") + ch + tail
    if kind == "lookalike":
        return head + LOOKALIKES[ch] + tail
    if kind == "swap":
        return head + tail[0] + ch + tail[1:]
    assert kind == "space" and tail[0] == " "
    return head + ch + tail[1:]


def test_each_char_edit_does_what_its_log_says() -> None:
    text = "hello lovely world sister"
    kinds = set()
    for seed in range(150):
        result = perturb(text, "char@0.05", run_seed=seed, sample_id="x")
        [entry] = result.log  # 22 letters: one unit touched
        kind, pos = entry.split()[0].split(".")[1], int(entry.split()[1].split(":")[1])
        param = entry.split()[2] if len(entry.split()) > 2 else None
        assert result.parts[0] == expected_char_edit(text, kind, pos, param), entry
        kinds.add(kind)
    # every edit but deletion, which the only touched unit of a part never gets
    assert kinds == {"case", "repeat", "symbol", "lookalike", "swap", "space"}
    for seed in range(10):
        log = perturb(text, "char@0.5", run_seed=seed, sample_id="x").log
        assert ".delete" not in log[0]
        kinds.update(e.split()[0].split(".")[1] for e in log)
    assert "delete" in kinds


def test_each_word_edit_does_what_its_log_says() -> None:
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]
    text = " ".join(words)
    kinds = set()
    for seed in range(40):
        result = perturb(text, "word@0.1", run_seed=seed, sample_id="w")
        [entry] = result.log  # ten words: one touched
        kind, i = entry.split()[0].split(".")[1], int(entry.split()[1].split(":")[1])
        out = list(words)
        if kind == "delete":
            del out[i]
        elif kind == "duplicate":
            out.insert(i, words[i])
        else:  # swap = move by +1
            offset = 1 if kind == "swap" else int(entry.split()[2])
            out.insert(i + offset, out.pop(i))
        assert result.parts[0] == " ".join(out), entry
        kinds.add(kind)
    assert kinds == {"duplicate", "swap", "move"}  # the only touched word is never deleted


@PROPERTY
@given(texts, st.sampled_from(["chars", "jieba"]))
def test_words_and_separators_rebuild_the_text(text, segmenter) -> None:
    if segmenter == "jieba":
        pytest.importorskip("jieba")
    split = split_words(text, segmenter)
    rebuilt = split.seps[0] + "".join(
        w + s for w, s in zip(split.words, split.seps[1:], strict=True)
    )
    assert rebuilt == text
    assert all(any(c.isalnum() for c in w) for w in split.words)
    assert not any(c.isalnum() for sep in split.seps for c in sep)  # every letter is in a word


def test_chinese_characters_skip_case_and_lookalike_and_words_use_the_segmenter() -> None:
    text = "我最近很难过，不想和任何人说话。工作压力很大，晚上也睡不着。"
    for seed in range(20):
        log = perturb(text, "char@0.5", run_seed=seed, sample_id="zh").log
        assert not [e for e in log if ".case" in e or ".lookalike" in e]
    chars = perturb(text, "word@0.5", run_seed=1, sample_id="zh", segmenter="chars")
    assert chars.segmenter == "chars"
    assert len(chars.log) == round(0.5 * len(re.findall(r"[\u4e00-\u9fff]", text)))
    jieba = pytest.importorskip("jieba")
    cut = perturb(text, "word@0.5", run_seed=1, sample_id="zh", segmenter="jieba")
    assert cut.segmenter == "jieba"
    n_words = len([w for w in jieba.lcut(text, HMM=False) if re.search(r"\w", w)])
    assert len(cut.log) == round(0.5 * n_words)
    assert perturb("no chinese here", "word@0.5", sample_id="en").segmenter is None


def test_sentences_go_to_boundaries_in_the_text_language() -> None:
    english = "I lost my job. Everything feels pointless! I don't know what to do."
    chinese = "我失业了。一切都没有意义！我不知道该怎么办。"
    for text, lang in ((english, "en"), (chinese, "zh")):
        for seed in range(10):
            result = perturb(text, "sentence@1", run_seed=seed, sample_id="s")
            [entry] = result.log
            offset, index = int(entry.split()[1].split(":")[1]), int(entry.split()[2])
            inserted = irrelevant_sentences(lang)[index]
            assert inserted in result.parts[0]
            assert offset in (0, len(text)) or text[offset - 1] in " 。！？"
            assert " ".join(result.parts[0].replace(inserted, "").split()) == " ".join(text.split())


def test_levels_parse_and_reject_bad_specs() -> None:
    assert [lv.name for lv in DEFAULT_LEVELS] == [
        "char@0.05", "char@0.1", "char@0.2", "char@0.1+word@0.1",
        "char@0.1+word@0.1+sentence@1", "char@0.1+word@0.1+sentence@2",
    ]  # fmt: skip
    assert parse_level("sentence@1+word@0.2+char@0.1").name == "char@0.1+word@0.2+sentence@1"
    assert parse_levels(["typo@0.1"])[0].steps == (("typo", 0.1),)
    for bad, why in [
        ("char", "OPERATOR@INTENSITY"),
        ("noise@0.1", "unknown operator"),
        ("char@1.5", "from 0 to 1"),
        ("sentence@1.5", "whole number"),
        ("sentence@51", "whole number"),
        ("sentence@-1", "whole number"),
        ("char@-0.5", "from 0 to 1"),
        ("char@0.1+char@0.2", "twice"),
    ]:
        with pytest.raises(UserError, match=why):
            parse_level(bad)
    with pytest.raises(UserError, match="listed twice"):
        parse_levels("char@0.1,char@0.10")
    with pytest.raises(UserError, match="empty"):
        parse_levels(" , ")


def test_cli_shows_the_perturbation_and_its_log() -> None:
    text = "I can't sleep and I feel so alone. Nobody would notice."
    expected = perturb(text, "char@0.2", run_seed=7, sample_id="item-1")
    shown = run_cli("perturb", "--operator", "char", "--intensity", "0.2", "--seed", "7",
                    "--sample-id", "item-1", text, env={"PYTHONHASHSEED": "123"})  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == expected.parts[0] + "\n"
    as_json = run_cli("perturb", "--levels", "default", "--json", "--seed", "7", "--sample-id",
                      "item-1", text, env={"PYTHONHASHSEED": "999"})  # fmt: skip
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    regenerated = perturb_levels(text, DEFAULT_LEVELS, run_seed=7, sample_id="item-1")
    assert [r["text"] for r in records] == [p.parts[0] for p in regenerated]
    assert [r["log"] for r in records] == [list(p.log) for p in regenerated]
    assert records[0]["seeds"]["char"] == regenerated[0].seeds["char"]
    bad = run_cli("perturb", "--operator", "sentence", "--intensity", "0.5", text)
    assert bad.returncode == 2 and "whole number" in bad.stderr


def test_cli_flags_are_checked_and_small_intensities_are_written_out() -> None:
    text = "I can't sleep and I feel so alone."
    bad_segmenter = run_cli("perturb", "--segmenter", "bogus", text)  # no Chinese in the text
    assert bad_segmenter.returncode == 2 and "segmenter 'bogus'" in bad_segmenter.stderr
    assert len(bad_segmenter.stderr.strip().splitlines()) == 1
    tiny = run_cli("perturb", "--json", "--intensity", "0.00001", text)  # :g would give 1e-05
    assert tiny.returncode == 0, tiny.stderr
    assert json.loads(tiny.stdout)["level"] == perturb(text, "char@0.00001").level
    both = run_cli("perturb", "--level", "char@0.1", "--levels", "default", text)
    assert both.returncode == 2 and "not both" in both.stderr  # one of them was ignored before
    assert len(both.stderr.strip().splitlines()) == 1
