"""Build the bundled offline subset `src/trustmh/bundled/data/` from a data folder.

Usage (from the repository root):

    python tools/build_bundle.py [DATA_DIR]        # default: $TRUSTMH_DATA_DIR

It copies the inputs of the privacy and ethics pillars byte for byte (trustmh_privacy, ethicmh,
trustmh_prompts; the large tier-3 story file gzip-compressed) and the authors' recorded responses
(trustmh_recorded) stripped of the fields the replay does not need (prompts and story texts, which
the tasks rebuild) and gzip-compressed, keeping the folder layout so the same loaders read both
(a loader reads `X.gz` when `X` is absent). The paper's published ranks go to
`src/trustmh/bundled/reference/`. MentalAlign's 13 MB `ratings.csv` is not copied: its counts
and sums per rater x response source x attribute (`mentalalign/model_sums.csv`, 350 rows, all
MentalBench-Align's published tables need) are written instead, by the same code that computes
them from `ratings.csv` at run time (`trustmh.judge_check.rating_sums`); `python
tools/build_bundle.py --mentalalign-only DATA_DIR` rebuilds only that file. Output is
deterministic (gzip mtime 0, sorted keys kept as recorded). Writes `data/SHA256SUMS` for the
bundled copies. Prints the total size, which must stay under 5 MB.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / "src" / "trustmh" / "bundled"
OUT = BUNDLE / "data"
LIMIT_BYTES = 5 * 1024 * 1024
COPY_PLAIN = [
    "trustmh_privacy/task1/tier_1.txt",
    "trustmh_privacy/task1/tier_1_labels.txt",
    "trustmh_privacy/task2/tier_2a.txt",
    "trustmh_privacy/task2/tier_2b.txt",
    "trustmh_privacy/task2/tier_2_labels.txt",
    "trustmh_privacy/task3/tier_3_control_psyqa_test.txt",
    "trustmh_prompts/ethics_ethicmh.json",
    "trustmh_prompts/privacy_confaide_psyleak.json",
    "trustmh_prompts/README.md",
]
COPY_GZIP = ["trustmh_privacy/task3/tier_3_psyqa_test.txt", "ethicmh/EthicMH.csv"]
# fields kept per recorded file kind (everything else is dropped)
KEEP_ETHICS = (
    "model",
    "judge_model",
    "temperature",
    "sample_id",
    "response",
    "judge_response",
    "recorded_choice",
)
KEEP_TIER1 = ("model", "id", "raw", "parsed")
KEEP_TIER2 = ("id", "model_rating")
KEEP_TIER3 = ("index", "response")
KEEP_TIER3_DATA = ("data_id", "scenario_idx", "question_type")


def _write_gz(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_name(path.name + ".gz").write_bytes(gzip.compress(data, compresslevel=9, mtime=0))


def _pick(record: dict, keys: tuple[str, ...]) -> dict:
    return {k: record[k] for k in keys if k in record}


def _strip_jsonl(src: Path, strip) -> bytes:
    lines = [
        json.dumps(strip(json.loads(line)), ensure_ascii=False)
        for line in src.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _strip_tier3(record: dict) -> dict:
    out = _pick(record, KEEP_TIER3)
    out["data"] = _pick(record["data"], KEEP_TIER3_DATA)
    return out


def _write_sums() -> None:
    """`data/SHA256SUMS`: the SHA-256 of each bundled file's uncompressed content, under its path
    without `.gz`, so `trustmh data verify` checks the trimmed copies against what was built."""
    lines = []
    for path in sorted(OUT.rglob("*")):
        if not path.is_file() or path.name == "SHA256SUMS":
            continue
        data = path.read_bytes()
        rel = path.relative_to(OUT).as_posix()
        if path.suffix == ".gz":
            data, rel = gzip.decompress(data), rel[: -len(".gz")]
        lines.append(f"{hashlib.sha256(data).hexdigest()}  {rel}")
    (OUT / "SHA256SUMS").write_text("\n".join(lines) + "\n", encoding="utf-8")


def build_mentalalign_sums(data_dir: Path) -> Path:
    """`mentalalign/model_sums.csv` from `data_dir/mentalalign/ratings.csv`, plus the source's
    LICENSE (MIT: the notice travels with the derived file)."""
    from trustmh.data.loaders.mentalalign import SOURCE, read_ratings
    from trustmh.data.sources import DataContext
    from trustmh.judge_check.rating_sums import SUMS_FILE, from_ratings

    folder = OUT / SOURCE
    folder.mkdir(parents=True, exist_ok=True)
    sums = from_ratings(read_ratings(DataContext((data_dir,))))
    path = folder / SUMS_FILE
    path.write_text(sums.to_csv(), encoding="utf-8", newline="")
    shutil.copyfile(data_dir / SOURCE / "LICENSE", folder / "LICENSE")
    return path


def build(data_dir: Path) -> int:
    """Rebuild the bundle from `data_dir`; returns its total size in bytes."""
    if OUT.exists():
        shutil.rmtree(OUT)
    for rel in COPY_PLAIN:
        dest = OUT / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_dir / rel, dest)
    for rel in COPY_GZIP:
        _write_gz(OUT / rel, (data_dir / rel).read_bytes())
    recorded = data_dir / "trustmh_recorded"
    for src in sorted(recorded.rglob("*")):
        if not src.is_file():
            continue
        rel = src.relative_to(data_dir)
        if rel.parts[1] == "ethics":
            data = _strip_jsonl(src, lambda r: _pick(r, KEEP_ETHICS))
        elif "task1" in rel.parts:
            data = _strip_jsonl(src, lambda r: _pick(r, KEEP_TIER1))
        elif "task2" in rel.parts:
            rows = [_pick(r, KEEP_TIER2) for r in json.loads(src.read_text(encoding="utf-8"))]
            data = json.dumps(rows).encode("utf-8")
        elif "task3" in rel.parts:
            data = _strip_jsonl(src, _strip_tier3)
        else:
            continue
        _write_gz(OUT / rel, data)
    build_mentalalign_sums(data_dir)
    _write_sums()
    reference = BUNDLE / "reference"
    reference.mkdir(parents=True, exist_ok=True)
    ranks = data_dir.parent / "reference" / "paper_ranks.csv"
    if ranks.is_file():
        shutil.copyfile(ranks, reference / "paper_ranks.csv")
    return sum(p.stat().st_size for p in BUNDLE.rglob("*") if p.is_file())


def main() -> None:
    """Command-line entry point."""
    args = sys.argv[1:]
    only_mentalalign = "--mentalalign-only" in args
    args = [a for a in args if a != "--mentalalign-only"]
    arg = args[0] if args else os.environ.get("TRUSTMH_DATA_DIR")
    if not arg or not Path(arg).is_dir():
        sys.exit(
            "usage: python tools/build_bundle.py [--mentalalign-only] DATA_DIR "
            "(or set TRUSTMH_DATA_DIR)"
        )
    if only_mentalalign:
        path = build_mentalalign_sums(Path(arg))
        _write_sums()
        print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size} bytes) and data/SHA256SUMS")
        return
    size = build(Path(arg))
    print(f"bundle: {OUT.relative_to(ROOT)} and reference/, {size / 1024 / 1024:.2f} MB total")
    if size > LIMIT_BYTES:
        sys.exit(f"bundle is {size} bytes, over the {LIMIT_BYTES}-byte limit")


if __name__ == "__main__":
    main()
