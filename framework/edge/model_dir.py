"""The on-device model directory: ``manifest.json``, ``model.onnx`` (+ external data), ``tokenizer.json``
(and, since 2026-12-04, the checkpoint's ``tokenizer.model``, which the embedder prefers when present).

The manifest is the model's identity card. It names the model, the revision of the weights
(hashed together with the prompts, because prompts change what a vector means), the dims the
model supports, the prompts, the modalities, the quantization recipe and a sha256 for every file,
so a truncated download or a hand-edited graph is caught before it produces wrong vectors.

Resolution order (:func:`resolve_model_dir`): an explicit path, ``$EDGEROUTE_EDGE_MODEL``, the
local cache (``$EDGEROUTE_CACHE_DIR`` or ``~/.cache/edgeroute``, then
``models/embeddinggemma-300m``), and finally the public ``onnx-community/embeddinggemma-300m-ONNX``
export on the Hugging Face hub when ``huggingface_hub`` is installed and the hub is reachable.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..digest import sha256_file, sha256_text
from ..errors import InputError, ModelIntegrityError, ModelNotFoundError

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
FORMAT_VERSION = 1
DEFAULT_MODEL_ID = "google/embeddinggemma-300m"
DEFAULT_MODEL_NAME = "embeddinggemma-300m"
MATRYOSHKA_DIMS = (768, 512, 256, 128)
MAX_TOKENS = 2048
PROMPT_FORMAT = "embeddinggemma"
HUB_REPO = "onnx-community/embeddinggemma-300m-ONNX"
ENV_MODEL = "EDGEROUTE_EDGE_MODEL"
ENV_CACHE = "EDGEROUTE_CACHE_DIR"

# The checkpoint's own prompts (config_sentence_transformers.json); used when a hub export lacks them.
EMBEDDINGGEMMA_PROMPTS: dict[str, str] = {
    "query": "task: search result | query: ",
    "document": "title: none | text: ",
    "BitextMining": "task: search result | query: ",
    "Clustering": "task: clustering | query: ",
    "Classification": "task: classification | query: ",
    "InstructionRetrieval": "task: code retrieval | query: ",
    "MultilabelClassification": "task: classification | query: ",
    "PairClassification": "task: sentence similarity | query: ",
    "Reranking": "task: search result | query: ",
    "Retrieval": "task: search result | query: ",
    "Retrieval-query": "task: search result | query: ",
    "Retrieval-document": "title: none | text: ",
    "STS": "task: sentence similarity | query: ",
    "Summarization": "task: summarization | query: ",
}


def prompt_revision(weights_revision: str, prompts: Mapping[str, str]) -> str:
    """The space revision: the weights' revision and the prompts, hashed together."""
    payload = json.dumps({"weights": weights_revision, "prompts": dict(prompts)}, sort_keys=True)
    return sha256_text(payload)


@dataclass(frozen=True)
class Manifest:
    """The parsed ``manifest.json`` of a model directory."""

    model_id: str
    revision: str
    dims: int = 768
    matryoshka_dims: tuple[int, ...] = MATRYOSHKA_DIMS
    max_tokens: int = MAX_TOKENS
    quantization: str = "none"
    prompt_format: str = PROMPT_FORMAT
    prompts: dict[str, str] = field(default_factory=lambda: dict(EMBEDDINGGEMMA_PROMPTS))
    modalities: tuple[str, ...] = ("text",)
    files: dict[str, str] = field(default_factory=dict)
    export: dict[str, Any] = field(default_factory=dict)
    model_file: str = MODEL_FILE
    output_name: str = "sentence_embedding"

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "model_id": self.model_id,
            "revision": self.revision,
            "dims": self.dims,
            "matryoshka_dims": list(self.matryoshka_dims),
            "max_tokens": self.max_tokens,
            "quantization": self.quantization,
            "prompt_format": self.prompt_format,
            "prompts": self.prompts,
            "modalities": list(self.modalities),
            "model_file": self.model_file,
            "output_name": self.output_name,
            "files": self.files,
            "export": self.export,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str) -> Manifest:
        try:
            return cls(
                model_id=str(data["model_id"]),
                revision=str(data["revision"]),
                dims=int(data["dims"]),
                matryoshka_dims=tuple(int(d) for d in data["matryoshka_dims"]),
                max_tokens=int(data["max_tokens"]),
                quantization=str(data["quantization"]),
                prompt_format=str(data["prompt_format"]),
                prompts={str(k): str(v) for k, v in dict(data["prompts"]).items()},
                modalities=tuple(str(m) for m in data["modalities"]),
                files={str(k): str(v) for k, v in dict(data["files"]).items()},
                export=dict(data.get("export", {})),
                model_file=str(data.get("model_file", MODEL_FILE)),
                output_name=str(data.get("output_name", "sentence_embedding")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelIntegrityError(
                f"{source} is not a valid edgeroute manifest ({type(exc).__name__}: {exc}); "
                "re-export the model with `edgeroute model export` or download it again."
            ) from exc


def read_manifest(directory: Path) -> Manifest:
    """The manifest of an exported model directory, or a ModelIntegrityError saying what is wrong."""
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise ModelIntegrityError(f"{directory} has no {MANIFEST}; it is not an edgeroute model directory.")
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelIntegrityError(
            f"{manifest_path} is not valid JSON ({exc}); re-export the model with "
            "`edgeroute model export` or download it again."
        ) from exc
    return Manifest.from_json(data, str(manifest_path))


def write_manifest(directory: Path, manifest: Manifest) -> Manifest:
    """Hash every file in ``directory`` (except the manifest) into ``manifest`` and write it."""
    files = {
        p.relative_to(directory).as_posix(): sha256_file(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    final = Manifest(**{**manifest.__dict__, "files": files})
    (directory / MANIFEST).write_text(json.dumps(final.to_json(), indent=2) + "\n", encoding="utf-8")
    return final


@dataclass(frozen=True)
class ModelDirectory:
    """A verified model directory. Open it with :meth:`open`."""

    path: Path
    manifest: Manifest

    @property
    def model_path(self) -> Path:
        return self.path / self.manifest.model_file

    @property
    def tokenizer_path(self) -> Path:
        return self.path / TOKENIZER_FILE

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, verify: bool = True) -> ModelDirectory:
        """Read the manifest (or build one for a hub export) and, with ``verify``, check every sha256.

        Raises :class:`ModelNotFoundError` if ``path`` is not a directory and
        :class:`ModelIntegrityError` if a file is missing or does not match its checksum.
        """
        root = Path(path).expanduser()
        if not root.is_dir():
            raise ModelNotFoundError(
                f"model directory {root} does not exist; export one with "
                f"`edgeroute model export --from CHECKPOINT --out {root}` or set ${ENV_MODEL}.",
                tried=[str(root)],
            )
        manifest = read_manifest(root) if (root / MANIFEST).is_file() else _hub_manifest(root)
        directory = cls(root, manifest)
        if verify:
            directory.verify()
        else:
            directory._check_present()
        return directory

    def _check_present(self) -> None:
        for name in (self.manifest.model_file, TOKENIZER_FILE, *self.manifest.files):
            if not (self.path / name).is_file():
                raise ModelIntegrityError(
                    f"model directory {self.path} is missing {name}; re-export it with "
                    "`edgeroute model export` or download it again."
                )

    def verify(self, progress: Callable[[str], None] | None = None) -> None:
        """Check every file listed in the manifest against its sha256."""
        self._check_present()
        self.verify_files(list(self.manifest.files), progress)

    def verify_files(self, names: list[str], progress: Callable[[str], None] | None = None) -> None:
        """Check the named files (those the manifest lists) against their sha256: a lazily loaded
        embedder checks each part just before it loads it."""
        for name in names:
            expected = self.manifest.files.get(name)
            if expected is None:
                continue
            if progress is not None:
                progress(name)
            actual = sha256_file(self.path / name)
            if actual != expected:
                raise ModelIntegrityError(
                    f"{self.path / name} is corrupted: sha256 {actual[:16]}... does not match the "
                    f"manifest's {expected[:16]}...; re-export the model with `edgeroute model export` "
                    "or download it again."
                )


def _hub_manifest(root: Path) -> Manifest:
    """Build a manifest for the onnx-community layout (``onnx/model.onnx``, no manifest.json)."""
    model_file = next((m for m in ("onnx/model.onnx", MODEL_FILE) if (root / m).is_file()), None)
    if model_file is None or not (root / TOKENIZER_FILE).is_file():
        raise ModelIntegrityError(
            f"{root} has no {MANIFEST} and is not an onnx-community export either "
            f"(needs onnx/model.onnx and {TOKENIZER_FILE}); export a model directory with "
            "`edgeroute model export --from CHECKPOINT --out DIR`."
        )
    prompts = dict(EMBEDDINGGEMMA_PROMPTS)
    st_config = root / "config_sentence_transformers.json"
    if st_config.is_file():
        prompts = dict(json.loads(st_config.read_text(encoding="utf-8")).get("prompts") or prompts)
    # Without a manifest there is no pinned checksum; the hash of the graph and every external-data
    # file (onnx-community keeps the weights in model.onnx_data) is the only honest revision.
    graph = root / model_file
    weight_files = [graph, *sorted(graph.parent.glob(graph.name + "_data*"))]
    weights_rev = sha256_text("".join(sha256_file(p) for p in weight_files))
    return Manifest(
        model_id=DEFAULT_MODEL_ID,
        revision=prompt_revision(weights_rev, prompts),
        prompts=prompts,
        files={},
        export={"source": HUB_REPO},
        model_file=model_file,
    )


def cache_dir() -> Path:
    """``$EDGEROUTE_CACHE_DIR`` or ``~/.cache/edgeroute``."""
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "edgeroute").expanduser()


def default_model_cache() -> Path:
    """Where the default model directory lives: ``<cache>/models/embeddinggemma-300m``."""
    return cache_dir() / "models" / DEFAULT_MODEL_NAME


def _download_from_hub(dest: Path, timeout_s: float) -> Path:
    try:
        import huggingface_hub
    except ImportError as exc:
        raise ModelNotFoundError("huggingface_hub is not installed (pip install huggingface_hub)") from exc
    if dest.is_dir() and any(dest.iterdir()):  # checked before fetching 1.2 GB that could not land
        raise ModelNotFoundError(
            f"{dest} holds files but no model; move them away or set ${ENV_MODEL} to a model directory"
        )
    # huggingface_hub asks for the repo's revision and file tree without any timeout (and reads its
    # download timeout from the environment once, at import): resolve the revision ourselves, with
    # ours, so an unreachable or stalled hub fails in `timeout_s` instead of hanging the load.
    commit = huggingface_hub.HfApi().repo_info(HUB_REPO, revision="main", timeout=timeout_s).sha
    # Download beside the cache and move it into place only once every file is there: files land
    # one by one, so an interrupted download (say, in the 1.2 GB model.onnx_data) would otherwise
    # leave onnx/model.onnx in `dest`, which resolve_model_dir takes as a model and never retries.
    # The next attempt resumes in the staging directory.
    staging = dest.with_name(dest.name + ".download")
    constants = huggingface_hub.constants
    saved = constants.HF_HUB_DOWNLOAD_TIMEOUT
    if "HF_HUB_DOWNLOAD_TIMEOUT" not in os.environ:  # the user's own setting wins
        constants.HF_HUB_DOWNLOAD_TIMEOUT = max(1, int(timeout_s))
    try:
        huggingface_hub.snapshot_download(
            repo_id=HUB_REPO,
            revision=commit,
            local_dir=str(staging),
            etag_timeout=timeout_s,
            allow_patterns=[
                "onnx/model.onnx",
                "onnx/model.onnx_data*",
                TOKENIZER_FILE,
                "config_sentence_transformers.json",
            ],
        )
    finally:
        constants.HF_HUB_DOWNLOAD_TIMEOUT = saved
    # huggingface_hub's resume bookkeeping is done with; a manifest pins every file's sha256 from now
    # on, so a later load verifies the download like an exported directory.
    shutil.rmtree(staging / ".cache", ignore_errors=True)
    write_manifest(staging, _hub_manifest(staging))
    if dest.is_dir():
        dest.rmdir()  # empty (checked above); os.replace cannot replace a directory on every OS
    os.replace(staging, dest)
    return dest


def resolve_model_dir(
    explicit: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    hub_timeout_s: float = 10.0,
) -> Path:
    """Find a model directory: explicit path, ``$EDGEROUTE_EDGE_MODEL``, the local cache, the hub.

    Returns the first candidate that exists. Raises :class:`ModelNotFoundError` naming each place
    tried and how to fix it.
    """
    tried: list[str] = []
    if explicit is not None:
        p = Path(explicit).expanduser()
        if p.is_dir():
            return p
        raise ModelNotFoundError(
            f"model directory {p} (given explicitly) does not exist; export one with "
            f"`edgeroute model export --from CHECKPOINT --out {p}`.",
            tried=[f"explicit path {p}"],
        )
    env = os.environ.get(ENV_MODEL)
    if env:
        p = Path(env).expanduser()
        if p.is_dir():
            return p
        tried.append(f"${ENV_MODEL}={p} (not a directory)")
    else:
        tried.append(f"${ENV_MODEL} (not set)")
    cached = default_model_cache()
    if (cached / MANIFEST).is_file() or (cached / "onnx" / MODEL_FILE).is_file():
        return cached
    tried.append(f"local cache {cached} (no model there)")
    if download:
        try:
            return _download_from_hub(cached, hub_timeout_s)
        except Exception as exc:  # any failure here means "not available"; the message lists it
            tried.append(f"Hugging Face hub {HUB_REPO} ({type(exc).__name__}: {str(exc)[:300]})")
    else:
        tried.append(f"Hugging Face hub {HUB_REPO} (download disabled)")
    raise ModelNotFoundError(
        "no EmbeddingGemma model directory found. Tried, in order:\n  - "
        + "\n  - ".join(tried)
        + f"\nFix: set ${ENV_MODEL} to a model directory, or create the cached one with "
        f"`edgeroute model export --from CHECKPOINT --out {cached}` (scripts/prepare-model does both steps), "
        "or install huggingface_hub on a host that can reach the hub.",
        tried=tried,
    )


def check_dims(manifest: Manifest, dims: int | None) -> int:
    """The dims to produce (the manifest's default for None); InputError for a size the model lacks."""
    if dims is None:
        return manifest.dims
    if isinstance(dims, bool) or not isinstance(dims, int) or dims not in manifest.matryoshka_dims:
        raise InputError(
            f"dims={dims!r} is not supported by {manifest.model_id}; use one of "
            f"{', '.join(str(d) for d in manifest.matryoshka_dims)} (Matryoshka truncation)."
        )
    return dims


__all__ = [
    "Manifest",
    "ModelDirectory",
    "cache_dir",
    "check_dims",
    "default_model_cache",
    "prompt_revision",
    "resolve_model_dir",
    "write_manifest",
]
