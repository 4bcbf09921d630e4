"""PII-free code, configuration, logs and tables for the PII head: training negatives and an evaluation set.

Snippets (1-4 consecutive non-blank lines, at most 300 characters) come from files of this repository (at
``REPO_COMMIT``) and of packages installed in the virtual environment. The two uses never share a file:

- training: repository files whose path hashes to an even number, and the ``TRAIN_PACKAGES``;
- evaluation (``framework/eval/data/pii_code_negatives.jsonl``, written by ``--write-eval``): repository
  files whose path hashes to an odd number, and the ``EVAL_PACKAGES``.

Files that hold names or PII on purpose (tests, PII fixtures and generators, docs, licences, author
metadata) are left out, and so are lines that name an author or a copyright holder: a name there is a
real person's name and the head should find it.

``synthetic`` adds generated look-alikes the issue names: ``region = eu-west-1``, coordinates in JSON,
ports, hashes, URLs, log lines, tables of numbers, product names in identifiers, secret placeholders.

    python scripts/pii_code_data.py --write-eval     # rewrites the evaluation set (seeded)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUFFIXES = {".py", ".toml", ".yaml", ".yml", ".json", ".cfg", ".ini", ".sh", ".txt", ".js", ".css", ".pyi"}
TRAIN_PACKAGES = ("pydantic", "starlette", "httpx", "yaml", "numpy/lib", "tokenizers", "click", "rich")
EVAL_PACKAGES = ("chromadb", "fastapi", "google/genai", "onnxruntime/tools", "jinja2", "urllib3")
SKIP_PARTS = ("tests", "docs", "eval/data", "pii_", "pii/", "faker", "LICENSE", "AUTHORS", "METADATA", ".git")
NAMED = re.compile(r"author|copyright|maintainer|contributor|credits|\(c\)|@[a-z0-9-]+\.[a-z]", re.I)


REPO_COMMIT = "ec200a7"
"""Repository files are read at this commit (``git show``), so the sets do not move with the work tree."""


def _read(path: Path) -> str:
    if path.is_relative_to(ROOT) and ".venv" not in path.parts:
        rel = path.relative_to(ROOT).as_posix()
        return subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{REPO_COMMIT}:{rel}"], check=True, capture_output=True
        ).stdout.decode("utf-8")
    return path.read_text(encoding="utf-8")


def _snippets(path: Path, rng: random.Random, limit: int) -> list[str]:
    try:
        lines = [ln.rstrip() for ln in _read(path).splitlines()]
    except (UnicodeDecodeError, OSError, subprocess.CalledProcessError):
        return []
    lines = [ln for ln in lines if ln.strip() and len(ln) < 200 and not NAMED.search(ln)]
    out: list[str] = []
    for _ in range(limit):
        if not lines:
            break
        i = rng.randrange(len(lines))
        n = rng.choice((1, 1, 2, 3, 4))
        text = "\n".join(lines[i : i + n])[:300].strip()
        if len(text) >= 12 and any(c.isalpha() for c in text):
            out.append(text)
    return out


def _repo_paths() -> list[Path]:
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-tree", "-r", "--name-only", REPO_COMMIT],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return sorted(ROOT / rel for rel in listed)


def _files(root: Path, pattern_parts: tuple[str, ...] = ()) -> list[Path]:
    out = []
    paths = _repo_paths() if root == ROOT else sorted(p for p in root.rglob("*") if p.is_file())
    for p in paths:
        rel = str(p.relative_to(root))
        if p.suffix not in SUFFIXES or any(s in rel for s in SKIP_PARTS):
            continue
        if pattern_parts and not any(rel.startswith(pp) for pp in pattern_parts):
            continue
        out.append(p)
    return out


def _even(rel: str) -> bool:
    return int(hashlib.sha256(rel.encode()).hexdigest(), 16) % 2 == 0


def collect(split: str, *, n: int, seed: int) -> list[dict[str, object]]:
    """``n`` snippets for ``split`` ("train" or "eval"), half from the repository, half from packages."""
    rng = random.Random(f"{seed}-{split}")
    want_even = split == "train"
    repo = [
        p
        for p in _files(ROOT, ("framework", "scripts", "policies", "deploy", "pyproject", "examples"))
        if _even(str(p.relative_to(ROOT))) == want_even
    ]
    site = Path(sysconfig.get_paths()["purelib"])
    pkgs = TRAIN_PACKAGES if split == "train" else EVAL_PACKAGES
    packaged = [p for p in _files(site, pkgs)]
    rows: list[dict[str, object]] = []
    for files, origin, count in ((repo, "repo", n // 2), (packaged, "packages", n - n // 2)):
        if not files:
            continue
        picks = [files[rng.randrange(len(files))] for _ in range(count)]
        for p in picks:
            for text in _snippets(p, rng, 1):
                rows.append({"text": text, "spans": [], "lang": "code", "source": f"{origin}:{p.name}"})
    return rows


def synthetic(*, n: int, seed: int) -> list[dict[str, object]]:
    """Generated code/config look-alikes with no PII in them (labels: none)."""
    r = random.Random(seed)
    regions = [
        "eu-west-1",
        "us-east-2",
        "ap-southeast-1",
        "europe-west4",
        "us-central1",
        "eastus2",
        "sa-east-1",
    ]
    words = ["api", "worker", "cache", "db", "ingest", "router", "gateway", "queue", "auth", "search"]
    brands = ["Fly.io", "IBM Cloud", "Heroku", "Azure", "Vercel", "Netlify", "Oracle Cloud", "DigitalOcean"]

    def hexs(k: int) -> str:
        return "".join(r.choice("0123456789abcdef") for _ in range(k))

    makers = [
        lambda: f"region = {r.choice(regions)}",
        lambda: f'"latitude":{r.uniform(-80, 80):.2f},"longitude":{r.uniform(-170, 170):.2f}',
        lambda: f"port: {r.choice([80, 443, 8080, 8443, 5432, 6379, 9000, 3000])}",
        lambda: f"listen {r.choice(['0.0.0.0', '127.0.0.1', '[::]'])}:{r.randint(1024, 65535)}",
        lambda: (
            f'{r.choice(words)}_url = "https://{r.choice(words)}.example.com/v{r.randint(1, 3)}/{r.choice(words)}"'
        ),
        lambda: f"sha256: {hexs(64)}",
        lambda: f"commit {hexs(40)}",
        lambda: (
            f"{r.choice(['INFO', 'WARN', 'DEBUG', 'ERROR'])} {r.choice(words)}-{r.randint(1, 9)} "
            f"request_id={hexs(16)} latency_ms={r.randint(1, 900)} status={r.choice([200, 201, 404, 500])}"
        ),
        lambda: " | ".join(str(r.randint(0, 9999)) for _ in range(r.randint(3, 7))),
        lambda: "\t".join(f"{r.uniform(0, 100):.2f}" for _ in range(r.randint(3, 6))),
        lambda: f'provider "{r.choice(brands)}" {{ region = "{r.choice(regions)}" }}',
        lambda: f'"TF {r.choice(brands)}": {{"enabled": {r.choice(["true", "false"])}}}',
        lambda: (
            f"{r.choice(['ibm', 'aws', 'gcp', 'azure'])}-cloud-{r.choice(['pwd', 'key', 'token'])}: <token>"
        ),
        lambda: (
            f"API_KEY={r.choice(['xxxx', 'xxxxxxxxxxxx', 'changeme', 'example', 'your-key-here', '<token>'])}"
        ),
        lambda: (
            f"replicas: {r.randint(1, 12)}\nimage: {r.choice(words)}:{r.randint(1, 9)}.{r.randint(0, 20)}.{r.randint(0, 9)}"
        ),
        lambda: (
            f"def {r.choice(words)}_{r.choice(words)}(self, {r.choice(words)}: int = {r.randint(0, 99)}) -> None:"
        ),
        lambda: (
            f"SELECT id, {r.choice(words)} FROM {r.choice(words)} WHERE created_at > now() - interval '{r.randint(1, 30)} days';"
        ),
        lambda: f"uuid: {hexs(8)}-{hexs(4)}-{hexs(4)}-{hexs(4)}-{hexs(12)}",
        lambda: f"timeout_s={r.randint(1, 120)} retries={r.randint(0, 5)} backoff=1.{r.randint(0, 9)}",
        lambda: f"struct_X509_{r.choice(words)}_st *{r.choice(words)} = NULL;",
    ]
    rows = []
    for i in range(n):
        rows.append({"text": makers[i % len(makers)](), "spans": [], "lang": "code", "source": "synthetic"})
    r.shuffle(rows)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write-eval", action="store_true")
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--seed", type=int, default=23)
    args = ap.parse_args()
    if not args.write_eval:
        sys.exit("pass --write-eval to rewrite framework/eval/data/pii_code_negatives.jsonl")
    rows = collect("eval", n=args.n, seed=args.seed)
    out = ROOT / "framework" / "eval" / "data" / "pii_code_negatives.jsonl"
    with out.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(
                json.dumps({"text": row["text"], "spans": [], "source": row["source"]}, ensure_ascii=False)
                + "\n"
            )
    print(f"wrote {len(rows)} snippets to {out}")


if __name__ == "__main__":
    main()
