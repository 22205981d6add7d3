"""Where each data source lives, and the catalogue of every source the benchmark knows.

Search order for every source: `--data-dir`, `$TRUSTMH_DATA_DIR`, the user cache filled by
`trustmh data fetch`, then the subset bundled in the package. A source id is the name of its
folder under a data root (`usmle_mental`, `emobench`, ...). The catalogue (`SOURCES`) gives each
source's title, license, upstream repository and pinned commit, its files with SHA-256 (from the
generated `checksums.py`) and where each file can be downloaded from; sources that are not
publicly downloadable (D4, SWMH, PAS) say how to request them.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from trustmh.cache_root import user_cache_root
from trustmh.data.checksums import FILES
from trustmh.errors import DataError

# where `trustmh data fetch` downloads from, when set (a mirror)
FETCH_BASE_URL_ENV = "TRUSTMH_FETCH_BASE_URL"

if TYPE_CHECKING:
    from trustmh.tasks.base import Task

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "bundled" / "data"


def user_data_cache() -> Path:
    """The user cache that `trustmh data fetch` fills (`$TRUSTMH_CACHE_DIR/data` when set)."""
    return user_cache_root() / "data"


# ---------------------------------------------------------------------------------------------
# Where the data is
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataContext:
    """The ordered list of data roots a run reads from, each with a label saying where it came
    from (`--data-dir`, `TRUSTMH_DATA_DIR`, `user cache`, `bundled`)."""

    roots: tuple[Path, ...]
    labels: tuple[str, ...] = ()

    def label(self, root: Path) -> str:
        """How `root` entered the search path (for messages and reports)."""
        for known, name in zip(self.roots, self.labels, strict=False):
            if known == root:
                return name
        return str(root)

    def root_of(self, source: str) -> Path | None:
        """The first root holding a folder for `source`, or None."""
        for root in self.roots:
            if (root / source).is_dir():
                return root
        return None

    def where(self, source: str) -> str:
        """`<label> (<root>)` of the root `source` is read from, or `not found`."""
        root = self.root_of(source)
        return "not found" if root is None else f"{self.label(root)} ({root})"

    def locate(self, source: str) -> Path:
        """The folder of `source` in the first root that has it."""
        root = self.root_of(source)
        if root is None:
            raise DataError(
                f"data source {source!r} not found in "
                f"{', '.join(map(str, self.roots)) or 'any data root'}; {how_to_get(source)}"
            )
        return root / source

    def file(self, source: str, relpath: str) -> Path:
        """A file of a source: the first root whose source folder holds it (or its `.gz` twin);
        when none does, the path in the first root that has the source folder."""
        for root in self.roots:
            folder = root / source
            if folder.is_dir():
                candidate = folder / relpath
                if candidate.is_file() or candidate.with_name(candidate.name + ".gz").is_file():
                    return candidate
        return self.locate(source) / relpath


def resolve_data_context(data_dir: Path | None = None) -> DataContext:
    """Data roots in search order: `--data-dir`, `$TRUSTMH_DATA_DIR`, user cache, bundled subset."""
    roots: list[Path] = []
    labels: list[str] = []
    if data_dir is not None:
        if not data_dir.is_dir():
            raise DataError(f"--data-dir {data_dir}: no such directory")
        roots.append(data_dir)
        labels.append("--data-dir")
    env = os.environ.get("TRUSTMH_DATA_DIR")
    if env:
        if not Path(env).is_dir():
            raise DataError(
                f"TRUSTMH_DATA_DIR={env}: no such directory; unset it or point it at the data folder"
            )
        roots.append(Path(env))
        labels.append("TRUSTMH_DATA_DIR")
    roots.append(user_data_cache())
    labels.append("user cache")
    roots.append(BUNDLED_DIR)
    labels.append("bundled")
    return DataContext(tuple(roots), tuple(labels))


# ---------------------------------------------------------------------------------------------
# The catalogue
# ---------------------------------------------------------------------------------------------

GITHUB_RAW = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"
AUTHORS_REPO = "Qiyuan0130/TrustMH_Bench"
AUTHORS_COMMIT = "94d65dbd125bfc5df64f0530f35fe0f568a13eb7"


@dataclass(frozen=True)
class Archive:
    """A zip file of an upstream repository that holds some of our files as members."""

    name: str
    url: str
    sha256: str
    size: int


PRIVACY_ZIP = Archive(
    "privacy.zip",
    GITHUB_RAW.format(
        repo=AUTHORS_REPO,
        commit=AUTHORS_COMMIT,
        path="TrustMH_Bench/DimGroup1/General-model/privacy.zip",
    ),
    "9db6f88f5b56a70c7689cf8bc1ad0c9b783de5e02de3c8d383ec21513893cb0f",
    1764234,
)
ETHICS_ZIP = Archive(
    "Ethics.zip",
    GITHUB_RAW.format(
        repo=AUTHORS_REPO, commit=AUTHORS_COMMIT, path="TrustMH_Bench/DimGroup2/Ethics.zip"
    ),
    "ad1ad7ed2fb00ef233fe4c39f584174f866101da7a7b6445c1f2d2461c35339e",
    2015937,
)


@dataclass(frozen=True)
class Origin:
    """Where one file can be downloaded: a URL, or a member of an archive."""

    url: str | None = None
    archive: Archive | None = None
    member: str | None = None

    def describe(self) -> str:
        """One line for listings."""
        if self.archive is not None:
            return f"{self.archive.url} (member {self.member})"
        return self.url or "-"


@dataclass(frozen=True)
class Rule:
    """Maps local files (a glob on the relative path) to their upstream place.

    `target` is a path template inside the upstream repository (`{path}` = the local relative
    path, `{name}` = its file name, `{dir}` = its first folder); with `archive` set it is the member name inside that archive;
    `target=None` marks files that are derived here and have no downloadable original (`why`).
    """

    pattern: str
    target: str | None
    archive: Archive | None = None
    why: str = ""


@dataclass(frozen=True)
class FileEntry:
    """One file of a source with its checksum and origin (None = not downloadable as-is)."""

    relpath: str
    sha256: str
    size: int
    origin: Origin | None
    derived_note: str = ""


@dataclass(frozen=True)
class Source:
    """A data source: one folder under a data root."""

    id: str
    title: str
    license: str
    upstream: str
    commit: str | None = None
    public: bool = True
    redistributable: bool = False
    rules: tuple[Rule, ...] = ()
    request: str = ""
    notes: str = ""
    files: dict[str, FileEntry] = field(default_factory=dict)

    @property
    def downloadable(self) -> bool:
        """True when at least one file can be fetched from the public originals."""
        return any(f.origin is not None for f in self.files.values())


def _origin(source: Source, relpath: str) -> tuple[Origin | None, str]:
    name = relpath.rsplit("/", 1)[-1]
    for rule in source.rules:
        if not fnmatch.fnmatchcase(relpath, rule.pattern):
            continue
        if rule.target is None:
            return None, rule.why
        target = rule.target.format(path=relpath, name=name, dir=relpath.split("/", 1)[0])
        if rule.archive is not None:
            return Origin(archive=rule.archive, member=target), ""
        url = GITHUB_RAW.format(repo=source.upstream, commit=source.commit, path=quote(target))
        return Origin(url=url), ""
    return None, "no upstream file recorded"


def _with_files(source: Source) -> Source:
    entries: dict[str, FileEntry] = {}
    for relpath, (digest, size) in FILES.get(source.id, {}).items():
        origin, why = _origin(source, relpath)
        entries[relpath] = FileEntry(relpath, digest, size, origin, why)
    return Source(**{**source.__dict__, "files": entries})


REQUEST_D4 = (
    "D4 (Chinese depression-diagnosis dialogues, Yao et al. 2022) is released on application: "
    "see https://x-lance.github.io/D4/ , sign the data-use agreement and e-mail it to the authors; "
    "then place it under <data-dir>/d4/ and pass --data-dir"
)
REQUEST_SWMH = (
    "SWMH (Reddit mental-disorder posts, Ji et al. 2022) is released on request for research use: "
    "ask the authors through its Zenodo record (https://zenodo.org/record/6476179); then place it "
    "under <data-dir>/swmh/ and pass --data-dir"
)
REQUEST_PAS = (
    "PAS (ELEPHANT's problematic-action statements) is not in the public ELEPHANT repository; "
    "ask the ELEPHANT authors (https://github.com/myracheng/elephant) and place it under "
    "<data-dir>/pas/"
)

_CATALOGUE: tuple[Source, ...] = (
    Source(
        "trustmh",
        "TrustMH-Bench datasets: JailbreakMH, PsyHarm, ESConv_fair, PsyLeak",
        "MIT",
        AUTHORS_REPO,
        AUTHORS_COMMIT,
        redistributable=True,
        rules=(Rule("LICENSE", "LICENSE"), Rule("*", "dataset/{path}")),
    ),
    Source(
        "trustmh_privacy",
        "TrustMH-Bench privacy tiers 1-3 as the authors ran them",
        "MIT (tiers 1-2 from ConfAIde, MIT)",
        AUTHORS_REPO,
        AUTHORS_COMMIT,
        redistributable=True,
        rules=(Rule("*", "privacy/{dir}/benchmark/{name}", PRIVACY_ZIP),),
    ),
    Source(
        "ethicmh",
        "EthicMH (ethical reasoning in mental health), from the authors' Ethics.zip",
        "MIT in repo; the upstream Ethical-Reasoning-in-Mental-Health-v1 terms apply",
        AUTHORS_REPO,
        AUTHORS_COMMIT,
        redistributable=False,
        rules=(Rule("EthicMH.csv", "Ethics/data/EthicMH.csv", ETHICS_ZIP),),
        notes="GB18030-encoded CSV with some mojibake apostrophes",
    ),
    Source(
        "trustmh_recorded",
        "Recorded per-sample model outputs of the authors' privacy and ethics runs",
        "MIT",
        AUTHORS_REPO,
        AUTHORS_COMMIT,
        redistributable=True,
        rules=(
            Rule("privacy/task1/*", "privacy/task1/result/{name}", PRIVACY_ZIP),
            Rule("privacy/task3/*", "privacy/task3/result/{name}", PRIVACY_ZIP),
            Rule(
                "privacy/task2/*",
                None,
                why="per-item ratings extracted from the authors' tier-2 result files (privacy.zip); "
                "not a file of the original",
            ),
            Rule(
                "ethics/*",
                None,
                why="the authors' ethics outputs (Ethics.zip) with the separately stored choice "
                "added as recorded_choice; not a file of the original",
            ),
        ),
    ),
    Source(
        "trustmh_prompts",
        "Prompt and judge templates extracted from the authors' Privacy and Ethics code",
        "MIT (authors' repo)",
        AUTHORS_REPO,
        AUTHORS_COMMIT,
        redistributable=True,
        rules=(
            Rule(
                "*",
                None,
                why="extracted by this project from the authors' code (see its provenance block); "
                "not a file of the original",
            ),
        ),
    ),
    Source(
        "confaide",
        "ConfAIde privacy benchmark tiers 1-4",
        "MIT",
        "skywalker023/confAIde",
        "3174c63e689226189675a740b7bf9053f10bae50",
        redistributable=True,
        rules=(Rule("LICENSE", "LICENSE"), Rule("*", "benchmark/{path}")),
    ),
    Source(
        "usmle_mental",
        "PsyEval USMLE-mental and Crisis_Response_QA",
        "MIT",
        "KaguraRuri/Psy-Eval",
        "173c6f454001f3494ea1f4f74d83cef65840add0",
        redistributable=True,
        rules=(Rule("LICENSE", "LICENSE"), Rule("*", "datasets/{path}")),
    ),
    Source(
        "emobench",
        "EmoBench emotional understanding (EU) and application (EA), with its prompts",
        "MIT",
        "Sahandfer/EmoBench",
        "3b4f84312541f8469e909965e1fff3691ef85c62",
        redistributable=True,
        rules=(
            Rule("LICENSE", "LICENSE"),
            Rule("prompts.yaml", "src/configs/prompts.yaml"),
            Rule("*", "data/{path}"),
        ),
    ),
    Source(
        "cpsycoune",
        "CPsyCounE: 45 Chinese counselling dialogues in 9 topics",
        "none stated in the repository",
        "CAS-SIAT-XinHai/CPsyCoun",
        "1954f2e2d01d3b0f568e1673a525a6d3d9a34c03",
        rules=(Rule("*", "CPsyCounE/{path}"),),
    ),
    Source(
        "esconv",
        "ESConv emotional-support conversations (test/dev prefixes, FailedESConv)",
        "CC BY-NC 4.0",
        "thu-coai/Emotional-Support-Conversation",
        "f262d062ad74cb39b17ea476facc81568ddcba24",
        rules=(
            Rule("LICENSE", "LICENSE"),
            Rule("FailedESConv.json", "FailedESConv.json"),
            Rule("*.tsv", "codes/dataset/{path}"),
        ),
        notes="the full ESConv.json (1,300 conversations) is not in the checksum table",
    ),
    Source(
        "c_ssrs",
        "Reddit C-SSRS 500 users (Gaur et al. 2019), copy in yw041202/DSAA2012_Project",
        "terms of Zenodo record 2667859 (verify before redistributing)",
        "yw041202/DSAA2012_Project",
        "1c7a104c504ee32051387033d3699d7b15fe87dc",
        rules=(Rule("*", "{path}"),),
        notes="28 Post cells are cut at 32,759 characters (spreadsheet cell limit)",
    ),
    Source(
        "mh_crisis",
        "LLMs-Mental-Health-Crisis: crisis labels, human annotations, appropriateness scores",
        "none stated in the repository",
        "ellisalicante/LLMs-Mental-Health-Crisis",
        "f4a70c1fd4ea6f7e09d50721065db4a4039e9fac",
        rules=(
            Rule("README.md", "README.md"),
            Rule("extra/llm_as_protocol_evaluator.py", "scripts/{name}"),
            Rule("extra/llm_prompting.py", "src/{name}"),
            Rule(
                "llm_label_test_gpt-4o-mini_merged.json",
                "data/llm_label/gpt-4o-mini-labeled-sampled_dataset_n_2046_nPerD168_seed0-merged-labels.json",
            ),
            Rule("*", "data/{path}"),
        ),
    ),
    Source(
        "elephant",
        "ELEPHANT social-sycophancy samples (OEQ, AITA) and scoring prompts",
        "CC0 1.0",
        "myracheng/elephant",
        "83263944cffdfd8caa48f8da2436642fd4e681bc",
        redistributable=True,
        rules=(
            Rule("LICENSE", "LICENSE"),
            Rule("elephant.py", "elephant.py"),
            Rule("*_sample.csv", "datasets/{path}"),
            Rule("*", "outputs/{path}"),
        ),
        notes="full OEQ.csv / AITA.csv are in the upstream datasets/ folder but not in the checksum table",
    ),
    Source(
        "mentalalign",
        "MentalAlign-70k ratings (human experts and four LLM judges) and rubric",
        "MIT",
        "abeerbadawi/MentalBench-Align",
        "03cfc4be2b7c181232652af304dc96d9bbcc5f8a",
        redistributable=True,
        rules=(
            Rule("LICENSE", "LICENSE"),
            Rule("*.md", "docs/{path}"),
            Rule("Human_judge.xlsx", "MentalAlign-70k/Human_Judge/{path}"),
            Rule("*_llm_judge.xlsx", "MentalAlign-70k/LLMs_as_a_judge/{path}"),
            Rule(
                "*.csv",
                None,
                why="long-format table built here from the upstream xlsx sheets; not a file of the original",
            ),
        ),
    ),
    Source(
        "vera_mh",
        "VERA-MH personas, persona meta-prompt, rubric question flow, 105 recorded conversations",
        "MIT-style with conditions: keep the copyright notice and the disclaimer (its LICENSE)",
        "SpringCare/VERA-MH",
        "f813d29228c0fbbf45e899308f25aef8ae29c6fb",
        redistributable=True,
        rules=(
            Rule("LICENSE", "LICENSE"),
            Rule("PROVENANCE.md", None, why="written by the data folder's curators"),
            Rule("data/*", "data/{name}"),
            Rule("docs/*", "docs/{name}"),
            # renamed here: the upstream folder name holds spaces and braces
            Rule(
                "concept_paper_conversations/p_gpt_5__a_gpt_5__t30__r5__20250915_102113__max_completion_tokens_5000/*",
                "concept_paper_conversations/p_gpt_5__a_gpt_5__t30__r5__20250915_102113__"
                "{{_max_completion_tokens_ 5000}}/{name}",
            ),
            Rule("concept_paper_conversations/*", "{path}"),
        ),
        notes="used only by crisis.multiturn_safety (BEYOND); 10 personas in personas.tsv, of "
        "which the recordings cover 7",
    ),
    Source(
        "d4",
        "D4: Chinese dialogues for depression diagnosis",
        "data-use agreement",
        "https://x-lance.github.io/D4/",
        public=False,
        request=REQUEST_D4,
    ),
    Source(
        "swmh",
        "SWMH: Reddit posts labelled with mental disorders",
        "research use on request",
        "https://zenodo.org/record/6476179",
        public=False,
        request=REQUEST_SWMH,
    ),
    Source(
        "pas",
        "ELEPHANT PAS: problematic-action statements",
        "unknown",
        "https://github.com/myracheng/elephant",
        public=False,
        request=REQUEST_PAS,
    ),
)


SOURCES: dict[str, Source] = {s.id: _with_files(s) for s in _CATALOGUE}


def get_source(source_id: str) -> Source:
    """The catalogue entry of a source, or a UserError listing the known ids."""
    if source_id not in SOURCES:
        raise DataError(f"unknown data source {source_id!r}; known: {', '.join(SOURCES)}")
    return SOURCES[source_id]


def how_to_get(source_id: str) -> str:
    """One clause telling the user how to obtain a source."""
    source = SOURCES.get(source_id)
    if source is None:
        return "pass --data-dir or set TRUSTMH_DATA_DIR to a folder that holds it"
    if not source.public:
        return source.request
    return (
        f"run `trustmh data fetch {source_id}`, or pass --data-dir / set TRUSTMH_DATA_DIR to a "
        "folder that holds it"
    )


def require_sources(ctx: DataContext, task: Task | Iterable[str]) -> None:
    """Raise a DataError naming the first missing data of a task and how to get it.

    Each entry of `task.sources` is a source id (`c_ssrs`) or a file of one (`c_ssrs/x.csv`).
    """
    entries = task.sources if hasattr(task, "sources") else tuple(task)
    task_id = getattr(task, "id", None)
    for entry in entries:
        source_id, _, relpath = entry.partition("/")
        found = ctx.root_of(source_id) is not None
        if found and relpath:
            path = ctx.file(source_id, relpath)
            found = path.is_file() or path.with_name(path.name + ".gz").is_file()
        if not found:
            who = f"task {task_id}: " if task_id else ""
            raise DataError(
                f"{who}data {entry!r} not found in any data root; {how_to_get(source_id)}"
            )
