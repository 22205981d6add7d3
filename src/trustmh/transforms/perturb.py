"""Seeded perturbations of user-written text (protocol 8.2; DEFAULT, reconstructed from the paper's
example figure: character noise, then word-order noise, then an inserted irrelevant sentence).

Operators. Each touched unit gets one edit, drawn uniformly among the edits that apply to it:
- `char`: case flip; repeat (2-4 copies in all); delete; insert one of `@ $ # . ,` before it;
  look-alike (a->α, o->0, e->3, i->1, s->$, l->1); swap with the next character; delete the space
  after it. Units: letters and digits, CJK characters included (case and look-alike skip them).
  Intensity = share of units touched.
- `word`: swap with the next word; delete; duplicate; move up to 3 positions away. Units: words
  (`segment.split_words`; Chinese through jieba or single characters). Intensity = share touched.
- `sentence`: insert k irrelevant short sentences (`data/irrelevant_sentences_<lang>.txt`) at
  sentence boundaries, the start included. Intensity = k.
- `typo` (extra, not in the default levels): replace an ASCII letter with a neighbouring QWERTY
  key (case kept). Intensity = share of ASCII letters touched.

A sample's user-written text may come in several parts (one per seeker turn); units are counted
over all parts together, and an edit never crosses a part.

Determinism and nesting. Each operator draws from its own stream, seeded by sha256 of (run seed,
sample id, operator). The stream fixes a random order of the units and, unit by unit in that
order, its edit; intensity x touches the first round(x * n) units (sentence: the first k draws).
So the same (run seed, sample id, operator, level) always gives the same text, and a higher
intensity makes every edit of a lower one plus more (the operator log of the lower level is a
prefix of the higher one's). The first unit each part draws never gets a deletion, so no part
is emptied. A level applies its operators in the order char, typo, word, sentence, each on the
previous one's output. The streams are `random.Random(seed).random()` draws (Mersenne Twister,
identical on every platform and CPython version).
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from trustmh.errors import UserError
from trustmh.transforms.segment import (
    has_cjk,
    is_chinese,
    is_cjk,
    segmenter_name,
    sentence_boundaries,
    split_words,
)

OPERATORS = ("char", "typo", "word", "sentence")  # the order a level applies them in
FRACTION_OPERATORS = ("char", "typo", "word")
DEFAULT_LEVELS_SPEC = (
    "char@0.05,char@0.1,char@0.2,char@0.1+word@0.1,"
    "char@0.1+word@0.1+sentence@1,char@0.1+word@0.1+sentence@2"
)
SYMBOLS = "@$#.,"
LOOKALIKES = {"a": "α", "o": "0", "e": "3", "i": "1", "s": "$", "l": "1"}
_KEY_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_MOVE_OFFSETS = (-3, -2, -1, 1, 2, 3)
_LEVEL_RE = re.compile(r"^(?P<op>[a-z]+)@(?P<x>[-+]?[0-9]*\.?[0-9]+)$")


def _keyboard_neighbours() -> dict[str, str]:
    """Each letter's distance-1 keys on a staggered QWERTY layout (row above: same and next
    column; same row: both sides; row below: previous and same column)."""
    out: dict[str, str] = {}
    for r, row in enumerate(_KEY_ROWS):
        for c, key in enumerate(row):
            near = [row[c - 1] if c > 0 else "", row[c + 1] if c + 1 < len(row) else ""]
            if r > 0:
                near += [_KEY_ROWS[r - 1][c : c + 2]]
            if r + 1 < len(_KEY_ROWS):
                near += [_KEY_ROWS[r + 1][max(c - 1, 0) : c + 1]]
            out[key] = "".join(near)
    return out


KEYBOARD = _keyboard_neighbours()


# ---------------------------------------------------------------------------------- levels


@dataclass(frozen=True)
class Level:
    """One perturbed condition: (operator, intensity) steps in application order."""

    steps: tuple[tuple[str, float], ...]

    @property
    def name(self) -> str:
        """The level's name, e.g. `char@0.1+word@0.1+sentence@2` (the sample variant)."""
        return "+".join(f"{op}@{_number(x)}" for op, x in self.steps)


def _number(x: float) -> str:
    return f"{x:.10f}".rstrip("0").rstrip(".")


def parse_level(spec: str) -> Level:
    """A level from `op@x[+op@x...]`, e.g. `char@0.1+word@0.1+sentence@1`; UserError when malformed."""
    found: dict[str, float] = {}
    for step in spec.strip().split("+"):
        match = _LEVEL_RE.match(step.strip())
        if match is None:
            raise UserError(
                f"level {spec!r}: {step.strip()!r} is not OPERATOR@INTENSITY, e.g. char@0.1+word@0.1+sentence@1"
            )
        op, x = match["op"], float(match["x"]) + 0.0  # + 0.0: -0 is 0
        if op not in OPERATORS:
            raise UserError(f"level {spec!r}: unknown operator {op!r}; use {', '.join(OPERATORS)}")
        if op in found:
            raise UserError(f"level {spec!r}: operator {op} appears twice")
        if op in FRACTION_OPERATORS and not 0 <= x <= 1:
            raise UserError(f"level {spec!r}: {op} intensity is a share of units, from 0 to 1")
        if op == "sentence" and (
            not x.is_integer() or not 0 <= x <= len(irrelevant_sentences("en"))
        ):
            raise UserError(
                f"level {spec!r}: sentence intensity is a whole number of sentences, "
                f"0 to {len(irrelevant_sentences('en'))}"
            )
        found[op] = x
    return Level(tuple((op, found[op]) for op in OPERATORS if op in found))


def parse_levels(spec: str | Sequence[str] | None) -> tuple[Level, ...]:
    """Levels from a comma-separated string or a list (None: the protocol's six default levels)."""
    if spec is None:
        spec = DEFAULT_LEVELS_SPEC
    items = spec.split(",") if isinstance(spec, str) else spec
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise UserError(f"levels {spec!r}: expected level strings such as 'char@0.1'")
    levels = tuple(parse_level(i) for i in items if i.strip())
    if not levels:
        raise UserError("levels: empty; give at least one level, e.g. char@0.1")
    names = [lv.name for lv in levels]
    if len(set(names)) != len(names):
        raise UserError(f"levels {spec!r}: a level is listed twice")
    return levels


# ---------------------------------------------------------------------------------- seeds


def derive_seed(run_seed: int, sample_id: str, operator: str) -> int:
    """A stable seed for one operator on one sample (sha256, never Python's salted hash); 48 bits,
    so it survives JSON readers that hold numbers as doubles."""
    blob = f"{run_seed}\x1f{sample_id}\x1f{operator}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:6], "big")


def _below(rng: random.Random, n: int) -> int:
    """A uniform integer in [0, n) from one `random()` draw (a C call; `randrange` is Python code
    and dominated the run time). Its bias, n / 2**53, is immaterial here."""
    return int(rng.random() * n)


def _touched(intensity: float, n: int) -> int:
    return min(n, math.floor(intensity * n + 0.5))


# ---------------------------------------------------------------------------------- operators


_CHAR_UNIT = re.compile(r"[^\W_]")  # exactly the characters for which str.isalnum() is true
_TYPO_UNIT = re.compile(r"[A-Za-z]")
Edit = tuple[int, int, str, Any]  # (part, position, kind, parameter)


class _Plan:
    """The draws of one operator on one input: a random order of its units and, unit by unit in
    that order, the unit's edit. Drawn lazily up to the largest intensity asked for, so every
    level on this input shares (a prefix of) the same draws."""

    def __init__(self, op: str, parts: tuple[str, ...], seed: int, segmenter: str):
        self.op, self.parts, self.rng = op, parts, random.Random(seed)
        self.edits: list[Edit] = []
        self.log: list[str] = []
        self.anchored: set[int] = set()  # parts whose first drawn unit (never deleted) is known
        if op == "sentence":
            self.choices = list(range(len(irrelevant_sentences("en"))))
            for i in range(len(self.choices) - 1, 0, -1):  # Fisher-Yates
                j = _below(self.rng, i + 1)
                self.choices[i], self.choices[j] = self.choices[j], self.choices[i]
            self.units = [(p, b) for p, t in enumerate(parts) for b in sentence_boundaries(t)]
        elif op == "word":
            self.split = [split_words(t, segmenter) for t in parts]
            self.units = [(p, i) for p, w in enumerate(self.split) for i in range(len(w.words))]
        else:
            unit = _TYPO_UNIT if op == "typo" else _CHAR_UNIT
            self.units = [(p, m.start()) for p, t in enumerate(parts) for m in unit.finditer(t)]
        self.order = list(range(len(self.units)))

    def count(self, intensity: float) -> int:
        """How many draws a level of this intensity takes."""
        if self.op == "sentence":
            return int(intensity) if self.units else 0
        return _touched(intensity, len(self.units))

    def take(self, k: int) -> list[Edit]:
        """The first k edits (drawn now if need be)."""
        while len(self.edits) < k:
            edit = self._draw(len(self.edits))
            self.edits.append(edit)
            p, pos, kind, param = edit
            self.log.append(f"{self.op}.{kind} {p}:{pos}" + ("" if param is None else f" {param}"))
        return self.edits[:k]

    def _draw(self, i: int) -> Edit:
        rng = self.rng
        if self.op == "sentence":
            p, offset = self.units[_below(rng, len(self.units))]
            return p, offset, "insert", self.choices[i]
        j = i + _below(rng, len(self.order) - i)  # Fisher-Yates, one step
        self.order[i], self.order[j] = self.order[j], self.order[i]
        p, pos = self.units[self.order[i]]
        anchor = p not in self.anchored
        self.anchored.add(p)
        if self.op == "typo":
            keys = KEYBOARD[self.parts[p][pos].lower()]
            return p, pos, "key", keys[_below(rng, len(keys))]
        if self.op == "word":
            return self._word_edit(rng, p, pos, anchor)
        kinds = _char_kinds(self.parts[p], pos, anchor)
        kind = kinds[_below(rng, len(kinds))]
        if kind == "repeat":
            return p, pos, kind, 2 + _below(rng, 3)
        if kind == "symbol":
            return p, pos, kind, SYMBOLS[_below(rng, len(SYMBOLS))]
        return p, pos, kind, None

    def _word_edit(self, rng: random.Random, p: int, i: int, anchor: bool) -> Edit:
        n = len(self.split[p].words)
        kinds = ["duplicate"] if anchor else ["duplicate", "delete"]
        if i + 1 < n:
            kinds.append("swap")
        offsets = [d for d in _MOVE_OFFSETS if 0 <= i + d < n]
        if offsets:
            kinds.append("move")
        kind = kinds[_below(rng, len(kinds))]
        if kind == "move":
            return p, i, kind, f"{offsets[_below(rng, len(offsets))]:+d}"
        return p, i, kind, None

    def apply(self, edits: list[Edit]) -> tuple[str, ...]:
        """The parts with these edits made."""
        by_part: list[dict[int, Any]] = [{} for _ in self.parts]
        for p, pos, kind, param in edits:
            if self.op == "sentence":
                by_part[p].setdefault(pos, []).append(param)
            else:
                by_part[p][pos] = (kind, param)
        out = []
        for p, (text, mine) in enumerate(zip(self.parts, by_part, strict=True)):
            if not mine:
                out.append(text)
            elif self.op == "sentence":
                out.append(_insert_sentences(text, mine))
            elif self.op == "word":
                out.append(_apply_words(self.split[p].words, self.split[p].seps, mine))
            else:
                out.append(_apply_char(text, mine))
        return tuple(out)


def _char_kinds(text: str, pos: int, anchor: bool) -> list[str]:
    """The char edits that apply at `pos` (the part's anchor is never deleted)."""
    ch = text[pos]
    nxt = text[pos + 1] if pos + 1 < len(text) else ""
    kinds = ["case", "repeat"] if ch.swapcase() != ch else ["repeat"]
    if not anchor:
        kinds.append("delete")
    kinds.append("symbol")
    if LOOKALIKES.get(ch.lower(), ch) != ch:
        kinds.append("lookalike")
    if nxt.isalnum() and nxt != ch:
        kinds.append("swap")
    if nxt == " " and pos + 2 < len(text) and not text[pos + 2].isspace():
        kinds.append("space")
    return kinds


def _apply_char(text: str, edits: dict[int, tuple[str, Any]]) -> str:
    pieces = list(text)
    moved: dict[int, str] = {}
    for pos, (kind, param) in edits.items():
        ch = text[pos]
        if kind == "case":
            pieces[pos] = ch.swapcase()
        elif kind == "repeat":
            pieces[pos] = ch * param
        elif kind == "delete":
            pieces[pos] = ""
        elif kind == "symbol":
            pieces[pos] = param + ch
        elif kind == "lookalike":
            pieces[pos] = LOOKALIKES[ch.lower()]
        elif kind == "swap":  # the character goes after its right neighbour (edited or not)
            pieces[pos] = ""
            moved[pos + 1] = ch
        elif kind == "space":
            pieces[pos + 1] = ""
        elif kind == "key":
            pieces[pos] = param.upper() if ch.isupper() else param
    for pos, ch in moved.items():
        pieces[pos] += ch
    return "".join(pieces)


def _apply_words(words: tuple[str, ...], seps: tuple[str, ...], edits: dict[int, tuple[str, Any]]) -> str:  # fmt: skip
    own = [[w] for w in words]
    before: list[list[str]] = [[] for _ in words]
    after: list[list[str]] = [[] for _ in words]
    for i in sorted(edits):  # words moved to one place keep their original order
        kind, param = edits[i]
        if kind == "delete":
            own[i] = []
        elif kind == "duplicate":
            own[i] = [words[i], words[i]]
        elif kind == "swap":
            own[i] = []
            after[i + 1].append(words[i])
        elif kind == "move":
            offset = int(param)
            own[i] = []
            (after if offset > 0 else before)[i + offset].append(words[i])
    slots = [b + o + a for b, o, a in zip(before, own, after, strict=True)]
    out = [seps[0]]
    emitted = False
    for i, slot in enumerate(slots):
        if slot:
            out += [_join_words(slot), seps[i + 1]]
            emitted = True
        else:
            out[-1] = _merge_seps(out[-1], seps[i + 1], emitted, i == len(slots) - 1)
    return "".join(out)


def _join_words(words: list[str]) -> str:
    text = words[0]
    for word in words[1:]:
        text += ("" if is_cjk(text[-1]) and is_cjk(word[0]) else " ") + word
    return text


def _merge_seps(prev: str, nxt: str, emitted: bool, last: bool) -> str:
    """The separator left where a word vanished between `prev` and `nxt`."""
    if not prev.strip() and not nxt.strip():  # both whitespace
        if not emitted:
            return prev  # nothing before: keep the text's own leading whitespace
        if last:
            return nxt
        if "\n" in prev or ("\n" not in nxt and len(prev) >= len(nxt)):
            return prev
        return nxt
    if prev.endswith(" ") and nxt.startswith(" "):
        return prev + nxt[1:]
    return prev + nxt


def _insert_sentences(text: str, inserts: dict[int, list[int]]) -> str:
    lang = "zh" if is_chinese(text) else "en"
    pool = irrelevant_sentences(lang)
    joiner = "" if lang == "zh" else " "
    for offset in sorted(inserts, reverse=True):
        block = joiner.join(pool[i] for i in inserts[offset])
        head, tail = text[:offset], text[offset:]
        if lang == "en":
            block = (" " if head and not head[-1].isspace() else "") + block
            block += " " if tail and not tail[0].isspace() else ""
        text = head + block + tail
    return text


@cache
def irrelevant_sentences(lang: str) -> tuple[str, ...]:
    """The shipped irrelevant sentences of a language (`en` or `zh`), one per line."""
    path = resources.files("trustmh.transforms") / "data" / f"irrelevant_sentences_{lang}.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    return tuple(line.strip() for line in lines if line.strip())


# ---------------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class Perturbation:
    """A perturbed text (in parts) with everything needed to regenerate and audit it."""

    parts: tuple[str, ...]
    level: str
    run_seed: int
    sample_id: str
    seeds: dict[str, int] = field(default_factory=dict)  # operator -> derived seed
    log: tuple[str, ...] = ()
    segmenter: str | None = None  # set when the word operator split Chinese text

    def record(self) -> dict[str, Any]:
        """The JSON-able record stored with the sample (protocol 8.2: seed and operator log)."""
        out: dict[str, Any] = {
            "level": self.level,
            "run_seed": self.run_seed,
            "sample_id": self.sample_id,
            "seeds": self.seeds,
            "log": list(self.log),
        }
        if self.segmenter:
            out["segmenter"] = self.segmenter
        return out


def perturb(parts: Sequence[str] | str, level: Level | str, *, run_seed: int = 0,
            sample_id: str = "", segmenter: str = "auto") -> Perturbation:  # fmt: skip
    """Perturb one sample's user-written text (a string or its parts) at one level."""
    return perturb_levels(
        parts, [level], run_seed=run_seed, sample_id=sample_id, segmenter=segmenter
    )[0]


def perturb_levels(parts: Sequence[str] | str, levels: Sequence[Level | str] | str, *,
                   run_seed: int = 0, sample_id: str = "", segmenter: str = "auto") -> list[Perturbation]:  # fmt: skip
    """Perturb one sample's text at several levels (a list, or a comma-separated string). Levels
    sharing leading steps compute them once, and levels that differ only in an operator's
    intensity share its draws."""
    clean = (parts,) if isinstance(parts, str) else tuple(parts)
    if isinstance(levels, str):
        levels = parse_levels(levels)
    # state after a prefix of steps: (texts, log, seeds, segmenter used)
    done: dict[tuple, tuple[tuple[str, ...], tuple[str, ...], dict[str, int], str | None]] = {
        (): (clean, (), {}, None)
    }
    plans: dict[tuple, _Plan] = {}  # (steps before, operator) -> the operator's draws on that input
    out = []
    for level in levels:
        level = parse_level(level) if isinstance(level, str) else level
        for n in range(1, len(level.steps) + 1):
            key = level.steps[:n]
            if key in done:
                continue
            texts, log, seeds, used = done[key[:-1]]
            op, intensity = key[-1]
            if intensity == 0:
                done[key] = done[key[:-1]]
                continue
            seed = derive_seed(run_seed, sample_id, op)
            if op == "word" and any(has_cjk(t) for t in texts):
                used = segmenter_name(segmenter)
            plan = plans.get((key[:-1], op))
            if plan is None:
                plan = plans[(key[:-1], op)] = _Plan(op, texts, seed, used or "chars")
            k = plan.count(intensity)
            edits = plan.take(k)
            done[key] = (plan.apply(edits), (*log, *plan.log[:k]), {**seeds, op: seed}, used)
        texts, log, seeds, used = done[level.steps]
        out.append(Perturbation(texts, level.name, run_seed, sample_id, seeds, log, used))
    return out


DEFAULT_LEVELS = parse_levels(None)  # the protocol's six levels (needs the sentence list above)
