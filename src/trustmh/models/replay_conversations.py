"""`replay:vera-mh/<chatbot>`: VERA-MH's recorded conversations played back turn by turn.

Each recorded configuration (a simulated-user model talking to one chatbot, 5 runs of 7 personas,
up to 30 turns) is one replayable model. A multi-step task asks it for turn k of a role within a
sample (`SampleRef.turn`): role "model" gets the chatbot's k-th recorded message, role
"simulator" the simulated user's k-th one, for the conversation whose `<Persona>/run<N>` is the
sample id. The backend plays both roles (`plays`), so such a run needs no `--simulator`; a turn
past the recording's end raises `NotRecorded`, which ends the conversation where it ended. Replies
carry `extra["replayed"]`, so the task plays the recording to its end whatever its turn budget.
"""

from __future__ import annotations

from trustmh.data.loaders import vera_mh
from trustmh.data.sources import DataContext, how_to_get
from trustmh.errors import UserError
from trustmh.models.base import NotRecorded
from trustmh.types import GenRequest, Response

PREFIX = "vera-mh/"
ROLES = {"model": "agent", "simulator": "user"}


def is_conversation_set(name: str) -> bool:
    """True when `replay:NAME` names a recorded conversation set rather than a paper model."""
    return name.lower().startswith(PREFIX)


def conversation_set_models(ctx: DataContext) -> list[tuple[str, str, str, int]]:
    """(replay name, chatbot, simulated-user model, conversations) of every recorded set."""
    labels = {v[0]: v[1:] for v in vera_mh.CONVERSATION_SETS.values()}
    out = []
    for name, conversations in vera_mh.conversation_sets(ctx).items():
        chatbot, user = labels.get(name, (name[len(PREFIX) :], "?"))
        out.append((name, chatbot, user, len(conversations)))
    return out


class ConversationReplayBackend:
    """Serves one recorded conversation set, both sides."""

    endpoint = "replay"
    cacheable = False
    plays = ("simulator",)

    def __init__(self, name: str, data: DataContext):
        if data.root_of(vera_mh.SOURCE) is None:
            raise UserError(
                f"replay:{name}: VERA-MH's recorded conversations are not in any data folder; "
                f"{how_to_get(vera_mh.SOURCE)}"
            )
        sets = vera_mh.conversation_sets(data)
        found = next((k for k in sets if k.lower() == name.lower()), None)
        if found is None:
            names = ", ".join(sets) or "none found"
            raise UserError(f"replay:{name}: no such recorded conversation set; recorded: {names}")
        labels = {v[0]: v[1:] for v in vera_mh.CONVERSATION_SETS.values()}
        self.chatbot, self.user_model = labels.get(found, (found[len(PREFIX) :], "?"))
        self.spec = f"replay:{found}"
        self.label = (
            f"replay: {self.chatbot} (VERA-MH's recorded conversations; user played by "
            f"{self.user_model})"
        )
        self._by_id = {f"{c.persona}/run{c.run}": c for c in sets[found]}

    async def generate(self, request: GenRequest) -> Response:
        """The recorded message of the request's role and turn, or NotRecorded."""
        ref = request.ref
        side = ROLES.get(ref.role) if ref else None
        conversation = self._by_id.get(ref.sample_id) if ref else None
        if ref is None or side is None or conversation is None:
            what = f"{ref.role} turn for sample {ref.sample_id}" if ref else "unreferenced request"
            raise NotRecorded(f"{self.spec}: no recorded {what}")
        texts = [text for who, text in conversation.turns if who == side]
        if ref.turn >= len(texts):
            raise NotRecorded(
                f"{self.spec}: {conversation.file} has {len(texts)} {side} turns, not {ref.turn + 1}"
            )
        who = self.chatbot if side == "agent" else self.user_model
        return Response(
            texts[ref.turn],
            finish_reason="stop",
            extra={"replayed": True, "recorded_model": who, "recorded_file": conversation.file},
        )

    async def aclose(self) -> None:
        """Nothing to release."""
