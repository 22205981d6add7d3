"""Model parameter profiles and request plans (protocol 1.7).

A profile (one row of `profiles.toml`, or of a user's `--model-profiles` file) says how a model
family's API differs from a plain chat request. `plan_request` turns a subtask's parameters into
what is sent to that model: the wire parameters (also what the cache key covers), the notes a
report must carry, and which parameters could not be set at the requested value. Adaptations
learned from the provider's 400s (`Adaptation`) are applied last.

The rules live in a small table of our own rather than in litellm's model map: that map holds
capabilities and prices per model (`supports_reasoning`, `supports_none_reasoning_effort`, cost
per token...), but the rules themselves (which parameter is renamed, dropped, exclusive with
another, allowed only without reasoning, and what the provider uses instead) are Python code in
litellm's per-provider transformation classes, not data; depending on litellm for them would add a
large, fast-moving dependency whose internals we would call. The table here is a dozen rows users
can read and extend, and a provider's 400 naming a parameter teaches the rest at run time.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from trustmh.errors import UserError
from trustmh.types import GenParams

Reasons = Literal["always", "by_default", "when_asked", "never"]
SAMPLING = ("temperature", "top_p")  # the parameters whose loss makes replies non-deterministic
# The Messages API requires a cap: this one is sent when a subtask leaves it open.
ANTHROPIC_DEFAULT_MAX_TOKENS = 4096
_KEYS = {
    "name", "about", "providers", "models", "exclude", "max_tokens_param", "not_settable",
    "not_settable_when_reasoning", "provider_defaults", "reasons", "reasoning_headroom", "efforts",
    "thinking_budgets", "temperature_max", "one_of",
}  # fmt: skip


@dataclass(frozen=True)
class Profile:
    """One row of the profile table (see `profiles.toml` for what each field means)."""

    name: str
    models: tuple[str, ...] = ()
    about: str = ""
    providers: tuple[str, ...] = ("openai",)
    exclude: tuple[str, ...] = ()
    max_tokens_param: str = "max_tokens"
    not_settable: tuple[str, ...] = ()
    not_settable_when_reasoning: tuple[str, ...] = ()
    provider_defaults: dict[str, float] = field(default_factory=dict)
    reasons: Reasons = "never"
    reasoning_headroom: int = 0
    efforts: tuple[str, ...] = ()
    thinking_budgets: dict[str, int] = field(default_factory=dict)
    temperature_max: float | None = None
    one_of: tuple[str, ...] = ()
    source: str = "built-in"

    def matches(self, provider: str, model: str) -> bool:
        """True when this profile applies to `model` on `provider`."""
        if provider not in self.providers:
            return False
        names = {model.lower(), model.lower().rsplit("/", 1)[-1]}

        def hit(patterns: tuple[str, ...]) -> bool:
            return any(fnmatch.fnmatchcase(n, p.lower()) for n in names for p in patterns)

        return hit(self.models) and not hit(self.exclude)

    def reasoning(self, effort: str | None) -> bool:
        """Whether the model reasons at this --reasoning-effort (None: not given)."""
        if self.reasons == "always":
            return True
        if self.reasons == "by_default":
            return effort != "none"
        if self.reasons == "when_asked":
            return effort not in (None, "none")
        return False


PASS_THROUGH = Profile(name="pass-through", about="sent as the subtask asks", providers=())


@dataclass(frozen=True)
class Adaptation:
    """What was learned from a provider's 400 naming a parameter: drop it, or send it under
    another name. `default` is the value the provider said it uses instead, when it said so."""

    param: str
    action: Literal["drop", "rename"]
    to: str | None = None
    default: float | None = None
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The JSON form stored with the run."""
        return {"param": self.param, "action": self.action, "to": self.to,
                "default": self.default, "message": self.message}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Adaptation:
        """An adaptation from its stored JSON form."""
        return cls(data["param"], data["action"], data.get("to"), data.get("default"),
                   data.get("message", ""))  # fmt: skip

    def describe(self) -> str:
        """One line for reports."""
        change = f"sent as {self.to}" if self.action == "rename" else "not sent"
        return f"{self.param} {change} after the provider rejected it ({self.message})"


@dataclass(frozen=True)
class RequestPlan:
    """What is sent for a subtask's parameters: `wire` (the generation parameters of the request
    body; what the cache key covers), `notes` for reports, and `unsettable`: parameters that could
    not be set at the requested value, with the provider's default (None when unknown)."""

    profile: str
    wire: dict[str, Any]
    notes: tuple[str, ...] = ()
    unsettable: dict[str, float | None] = field(default_factory=dict)
    reasoning: bool = False
    asked_cap: int | None = None  # the subtask's max_tokens
    headroom: int = 0  # tokens added to it for reasoning

    def record(self) -> dict[str, Any]:
        """The JSON form stored with the run."""
        return {"profile": self.profile, "sent": self.wire, "notes": list(self.notes),
                "unsettable": self.unsettable, "reasoning": self.reasoning,
                "asked_cap": self.asked_cap, "headroom": self.headroom}  # fmt: skip

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> RequestPlan:
        """A plan from its stored JSON form."""
        return cls(data["profile"], data["sent"], tuple(data.get("notes", ())),
                   data.get("unsettable", {}), bool(data.get("reasoning")),
                   data.get("asked_cap"), int(data.get("headroom") or 0))  # fmt: skip


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def unsettable_note(unsettable: dict[str, float | None], who: str = "replies") -> str | None:
    """The report line for sampling parameters that could not be set, e.g. "temperature not
    settable: provider default 1; replies are not deterministic"; None when there are none."""
    names = [n for n in SAMPLING if n in unsettable]
    if not names:
        return None
    parts = []
    for name in names:
        default = unsettable[name]
        parts.append(
            f"{name} not settable: provider default {_fmt(default)}"
            if default is not None
            else f"{name} not settable: provider default used"
        )
    return "; ".join(parts) + f"; {who} are not deterministic"


def plan_request(
    profile: Profile,
    params: GenParams,
    *,
    provider: str,
    effort: str | None = None,
    learned: tuple[Adaptation, ...] = (),
) -> RequestPlan:
    """The request plan for `params` under `profile` (see the module docstring). A pass-through
    profile with nothing learned sends `params.as_dict()` unchanged, so the cache keys of such
    requests are what they always were."""
    wire = params.as_dict()
    notes: list[str] = []
    unsettable: dict[str, float | None] = {}
    reasoning = profile.reasoning(effort)
    thinking_budget = None
    if effort is not None:
        if provider == "anthropic" and effort in profile.thinking_budgets:
            thinking_budget = profile.thinking_budgets[effort]
            wire["thinking"] = {"type": "enabled", "budget_tokens": thinking_budget}
        elif not (provider == "anthropic" and effort == "none"):
            wire["reasoning_effort"] = effort
    dropped = set(profile.not_settable) | (
        set(profile.not_settable_when_reasoning) if reasoning else set()
    )
    for name in sorted(dropped & set(wire), key=list(wire).index):
        value = wire.pop(name)
        default = profile.provider_defaults.get(name)
        if default is None or float(value) != float(default):
            unsettable[name] = default
        notes.append(f"{name} {_fmt(value)} not sent: {profile.name} models take only the provider's default"
                     + (f" ({_fmt(default)})" if default is not None else ""))  # fmt: skip
    ceiling = profile.temperature_max
    if ceiling is not None and wire.get("temperature", 0.0) > ceiling:
        notes.append(
            f"temperature {_fmt(wire['temperature'])} sent as {_fmt(ceiling)}, the provider's maximum"
        )
        wire["temperature"] = ceiling
    present = [name for name in profile.one_of if name in wire]
    for name in present[1:]:
        notes.append(f"{name} {_fmt(wire.pop(name))} not sent: {profile.name} models take "
                     f"{' or '.join(profile.one_of)}, not both")  # fmt: skip
    cap = asked_cap = wire.pop("max_tokens", None)
    headroom = 0
    if thinking_budget is not None:
        base = cap if cap is not None else ANTHROPIC_DEFAULT_MAX_TOKENS
        cap, headroom = base + thinking_budget, thinking_budget
        notes.append(
            f"max_tokens {base} sent as {cap}: {thinking_budget} more for extended thinking"
        )
    elif reasoning and profile.reasoning_headroom and cap is not None:
        notes.append(f"max_tokens {cap} sent as {profile.max_tokens_param} "
                     f"{cap + profile.reasoning_headroom}: {profile.reasoning_headroom} more for "
                     "the reasoning the cap also covers")  # fmt: skip
        cap, headroom = cap + profile.reasoning_headroom, profile.reasoning_headroom
    elif cap is not None and profile.max_tokens_param != "max_tokens":
        notes.append(f"max_tokens sent as {profile.max_tokens_param}")
    if cap is not None:
        wire[profile.max_tokens_param] = cap
    for adaptation in learned:
        _apply(adaptation, wire, notes, unsettable)
    return RequestPlan(profile.name, wire, tuple(notes), unsettable, reasoning, asked_cap, headroom)


def _apply(a: Adaptation, wire: dict[str, Any], notes: list[str],
           unsettable: dict[str, float | None]) -> None:  # fmt: skip
    if a.param not in wire:
        return
    value = wire.pop(a.param)
    if a.action == "rename" and a.to:
        wire[a.to] = value
    elif a.param in SAMPLING and (a.default is None or float(value) != float(a.default)):
        unsettable[a.param] = a.default
    notes.append(a.describe())


# ------------------------------------------------------------------------------------- loading


def _parse(rows: Any, source: str) -> list[Profile]:
    if not isinstance(rows, list):
        raise UserError(f"{source}: expected [[profile]] tables; see docs/protocol.md section 1.7")
    out = []
    for i, row in enumerate(rows, 1):
        where = f"{source}: profile {i}"
        if not isinstance(row, dict):
            raise UserError(f"{where}: expected a table of keys")
        unknown = set(row) - _KEYS
        if unknown:
            raise UserError(
                f"{where}: unknown key(s) {', '.join(sorted(unknown))}; valid keys: {', '.join(sorted(_KEYS))}"
            )
        if not row.get("name") or not row.get("models"):
            raise UserError(f"{where}: needs a name and a list of model patterns (models = [...])")
        try:
            profile = Profile(
                name=str(row["name"]),
                models=tuple(str(m) for m in row["models"]),
                about=str(row.get("about", "")),
                providers=tuple(row.get("providers", ("openai",))),
                exclude=tuple(row.get("exclude", ())),
                max_tokens_param=str(row.get("max_tokens_param", "max_tokens")),
                not_settable=tuple(row.get("not_settable", ())),
                not_settable_when_reasoning=tuple(row.get("not_settable_when_reasoning", ())),
                provider_defaults={str(k): float(v) for k, v in row.get("provider_defaults", {}).items()},
                reasons=row.get("reasons", "never"),
                reasoning_headroom=int(row.get("reasoning_headroom", 0)),
                efforts=tuple(row.get("efforts", ())),
                thinking_budgets={str(k): int(v) for k, v in row.get("thinking_budgets", {}).items()},
                temperature_max=None if row.get("temperature_max") is None else float(row["temperature_max"]),
                one_of=tuple(row.get("one_of", ())),
                source=source,
            )  # fmt: skip
        except (TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"{where} ({row.get('name')}): {exc}") from None
        if profile.reasons not in ("always", "by_default", "when_asked", "never"):
            raise UserError(
                f"{where} ({profile.name}): reasons = {profile.reasons!r}; use always, by_default, when_asked or never"
            )
        unknown_providers = set(profile.providers) - {"openai", "anthropic"}
        if unknown_providers:
            raise UserError(
                f"{where} ({profile.name}): unknown provider(s) {', '.join(sorted(unknown_providers))}; use openai or anthropic"
            )
        out.append(profile)
    return out


@cache
def builtin_profiles() -> tuple[Profile, ...]:
    """The table shipped with trustmh (`profiles.toml`)."""
    text = resources.files("trustmh.models").joinpath("profiles.toml").read_text(encoding="utf-8")
    return tuple(_parse(tomllib.loads(text).get("profile", []), "built-in profiles.toml"))


def load_profiles(path: Path | None = None, flag: str = "--model-profiles") -> tuple[Profile, ...]:
    """The user's profiles from `path` (tried first), then the built-in table."""
    if path is None:
        return builtin_profiles()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(
            f"{flag} {path}: cannot read the file ({exc.strerror}); check the path"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{flag} {path}: invalid TOML: {exc}") from None
    return (*_parse(data.get("profile", []), f"{flag} {path}"), *builtin_profiles())


def find_profile(provider: str, model: str, profiles: tuple[Profile, ...] | None = None) -> Profile:
    """The first profile matching `model` on `provider`, else the pass-through profile."""
    for profile in profiles if profiles is not None else builtin_profiles():
        if profile.matches(provider, model):
            return profile
    return PASS_THROUGH


def check_effort(
    profile: Profile, effort: str | None, spec: str, flag: str = "--reasoning-effort"
) -> None:
    """UserError when `effort` is not one this profile's models accept."""
    if effort is None or not profile.efforts and not profile.thinking_budgets:
        return
    allowed = profile.efforts or ("none", *profile.thinking_budgets)
    if effort not in allowed:
        raise UserError(
            f"{flag} {effort!r}: {spec} (profile {profile.name}) takes {', '.join(allowed)}"
        )


def plan_for(backend: Any, params: GenParams) -> RequestPlan:
    """The request plan of any backend: its own `plan` when it has one (the live backends), else
    the parameters unchanged (replay, baseline and other backends without provider rules)."""
    plan = getattr(backend, "plan", None)
    if plan is None:
        return RequestPlan(PASS_THROUGH.name, params.as_dict())
    return plan(params)


class ParameterRules:
    """A live backend's parameter rules: its profile, the --reasoning-effort asked for, and the
    adaptations learned from the provider's 400s (seeded from the run and the shared cache, so a
    resumed or repeated run sends the adapted request at once). Plans are memoised per parameter
    set: the request path asks for one per request."""

    def __init__(self, provider: str, model: str, spec: str, *,
                 profiles: tuple[Profile, ...] | None = None, effort: str | None = None,
                 effort_flag: str = "--reasoning-effort"):  # fmt: skip
        self.provider = provider
        self.profile = find_profile(provider, model, profiles)
        check_effort(self.profile, effort, spec, effort_flag)
        self.effort = effort
        self._learned: dict[str, Adaptation] = {}
        self._plans: dict[GenParams, RequestPlan] = {}

    def plan(self, params: GenParams) -> RequestPlan:
        """The request plan for these parameters (see `plan_request`)."""
        plan = self._plans.get(params)
        if plan is None:
            plan = self._plans[params] = plan_request(
                self.profile, params, provider=self.provider, effort=self.effort,
                learned=tuple(self._learned.values()),
            )  # fmt: skip
        return plan

    @property
    def learned(self) -> list[Adaptation]:
        """The adaptations learned so far, in the order they were learned."""
        return list(self._learned.values())

    def learn(self, adaptation: Adaptation) -> bool:
        """Adopt an adaptation; False when one for that parameter is already known."""
        if adaptation.param in self._learned:
            return False
        self._learned[adaptation.param] = adaptation
        self._plans.clear()
        return True
