"""Convert EmbeddingGemma for the other runtimes that ``edgeroute bench edge`` compares: OpenVINO IR
(fp32, or NNCF int8 weight compression) from the fp32 ONNX export, and llama.cpp GGUF (Q8_0, Q4_0) from
the sentence-transformers checkpoint with both dense layers in the file.

Each result is a model directory like an ONNX one (docs/edge-model.md): the source directory's
``manifest.json`` (same prompts, revision, dims) with ``model_file`` naming the new graph
(``model.xml`` or ``model.gguf``, which picks the runtime: :mod:`..runtimes`), ``quantization`` naming
the conversion (``ov-fp32``, ``ov-int8-asym``, ``gguf-q8_0``, ``gguf-q4_0``: a different embedding space
from every other recipe), the tokenizer files copied, and every file's sha256. ``scripts/convert-runtimes``
runs all of it into ``~/.cache/edgeroute-dev/runtimes``; model files are never committed.

Needs ``edgeroute[openvino]`` (``openvino``, ``nncf``) or ``edgeroute[llamacpp]`` plus llama.cpp's
``convert_hf_to_gguf.py`` (in the llama-cpp-python sdist's ``vendor/llama.cpp``, with its ``gguf-py``) and
the ``export`` extra (torch).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ...errors import ConfigurationError, InputError
from ..model_dir import MANIFEST, Manifest, ModelDirectory, write_manifest
from ..runtimes import LLAMACPP, OPENVINO, require_runtime
from ..tokenizer import COMPACT_FILE, SENTENCEPIECE_FILE

OV_MODES = ("fp32", "int8-asym", "int8-sym")
GGUF_TYPES = ("f32", "q8_0", "q4_0")
_TOKENIZER_FILES = ("tokenizer.json", SENTENCEPIECE_FILE, COMPACT_FILE)


def _staged(out: Path) -> Path:
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise InputError(
            f"{out} exists and is not an edgeroute model directory; choose an empty or new --out."
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".convert-", dir=out.parent))


def _finish(
    src: ModelDirectory,
    stage: Path,
    out: Path,
    model_file: str,
    quantization: str,
    how: str,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Copy the tokenizer, write the manifest (fresh sha256 of every file) and swap ``stage`` into ``out``."""
    for name in _TOKENIZER_FILES:
        if (src.path / name).is_file() and name in src.manifest.files:
            shutil.copy2(src.path / name, stage / name)
    m = src.manifest
    export = {k: v for k, v in m.export.items() if k not in ("parity", "token_states", "graph_fusion")}
    write_manifest(
        stage,
        Manifest(
            **{
                **m.__dict__,
                "model_file": model_file,
                "quantization": quantization,
                "export": {**export, "converted_from": str(src.path), "conversion": how, **(extra or {})},
            }
        ),
    )
    if out.exists():
        shutil.rmtree(out)
    shutil.move(str(stage), out)
    return out


def to_openvino(src_dir: Path, out: Path, mode: str = "fp32", precision: str = "f32") -> Path:
    """``src_dir``'s ONNX graph (the plain fp32 trace: ``--quantize none --no-fuse``, whose standard ops
    OpenVINO's own fusions recognise) as OpenVINO IR; ``int8-asym``/``int8-sym``: NNCF
    ``compress_weights`` (per-channel int8 weights, fp32 activations) on every MatMul and the embedding
    table. Weights are kept fp32 in the IR (``compress_to_fp16=False``): fp16 storage would be another
    model. ``precision`` (``f32``, ``bf16``) is the CPU plugin's inference precision the directory is run
    with (stored in the manifest; ``bf16`` needs AVX-512 BF16 or AMX to be fast, and is named
    ``ov-<mode>-bf16``)."""
    if precision not in ("f32", "bf16"):
        raise InputError(f"unknown OpenVINO inference precision {precision!r}; use f32 or bf16.")
    if mode not in OV_MODES:
        raise InputError(f"unknown OpenVINO mode {mode!r}; use one of {', '.join(OV_MODES)}.")
    src = ModelDirectory.open(src_dir, verify=False)
    if src.manifest.quantization != "none":
        raise InputError(f"{src_dir} holds a {src.manifest.quantization!r} graph; convert the fp32 export.")
    ov = require_runtime(OPENVINO, src.model_path)
    stage = _staged(out)
    try:
        model = ov.convert_model(str(src.model_path))
        how = "openvino.convert_model (fp32)"
        if mode != "fp32":
            try:
                import nncf
            except ImportError as exc:
                raise ConfigurationError(
                    "int8 compression needs nncf: pip install 'edgeroute[openvino]'"
                ) from exc
            cmode = (
                nncf.CompressWeightsMode.INT8_ASYM
                if mode == "int8-asym"
                else nncf.CompressWeightsMode.INT8_SYM
            )
            model = nncf.compress_weights(model, mode=cmode)
            how = f"openvino.convert_model + nncf.compress_weights({cmode.name})"
        ov.save_model(model, str(stage / "model.xml"), compress_to_fp16=False)
        name = f"ov-{mode}" + ("" if precision == "f32" else f"-{precision}")
        settings = {"openvino": {"inference_precision": precision}}
        return _finish(src, stage, out, "model.xml", name, how, settings)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def to_gguf(checkpoint: Path, src_dir: Path, out: Path, outtype: str, convert_script: Path) -> Path:
    """The sentence-transformers ``checkpoint`` as GGUF with both dense layers, via llama.cpp's
    ``convert_hf_to_gguf.py --sentence-transformers-dense-modules``; ``q4_0`` is quantized from the f32
    file by llama.cpp itself (``llama_model_quantize``). ``src_dir`` gives the manifest and tokenizer
    (the same checkpoint's ONNX export)."""
    if outtype not in GGUF_TYPES:
        raise InputError(f"unknown GGUF type {outtype!r}; use one of {', '.join(GGUF_TYPES)}.")
    if not convert_script.is_file():
        raise InputError(
            f"{convert_script} not found: pass llama.cpp's convert_hf_to_gguf.py (vendor/llama.cpp in the "
            "llama-cpp-python sdist: pip download --no-binary :all: --no-deps llama-cpp-python)."
        )
    src = ModelDirectory.open(src_dir, verify=False)
    stage = _staged(out)
    try:
        direct = "q8_0" if outtype == "q8_0" else "f32"
        target = stage / "model.gguf"
        first = target if direct == outtype else stage / "model-f32.gguf"
        cmd = [
            sys.executable,
            str(convert_script),
            str(checkpoint),
            "--outtype",
            direct,
            "--outfile",
            str(first),
        ]
        proc = subprocess.run([*cmd, "--sentence-transformers-dense-modules"], capture_output=True, text=True)
        if proc.returncode != 0:
            raise ConfigurationError(f"convert_hf_to_gguf.py failed:\n{proc.stderr[-3000:]}")
        how = f"convert_hf_to_gguf.py --outtype {direct} --sentence-transformers-dense-modules"
        if first != target:
            _llama_quantize(first, target, outtype)
            first.unlink()
            how += f" + llama_model_quantize({outtype.upper()})"
        from ..runtimes import check_gguf_dense

        check_gguf_dense(target)
        return _finish(src, stage, out, "model.gguf", f"gguf-{outtype}", how)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _llama_quantize(src: Path, dst: Path, outtype: str) -> None:
    llama_cpp: Any = require_runtime(LLAMACPP, src)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{outtype.upper()}")
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), llama_cpp.byref(params))
    if rc != 0:
        raise ConfigurationError(f"llama_model_quantize {src} -> {outtype} failed (code {rc}).")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="convert EmbeddingGemma for OpenVINO or llama.cpp")
    sub = p.add_subparsers(dest="target", required=True)
    o = sub.add_parser("openvino", help="OpenVINO IR from an fp32 ONNX model directory")
    o.add_argument(
        "src", type=Path, help="fp32 model directory (edgeroute model export --quantize none --no-fuse)"
    )
    o.add_argument("out", type=Path)
    o.add_argument("--mode", choices=OV_MODES, default="fp32")
    o.add_argument("--precision", choices=("f32", "bf16"), default="f32", help="CPU inference precision")
    g = sub.add_parser("gguf", help="llama.cpp GGUF from the sentence-transformers checkpoint")
    g.add_argument("checkpoint", type=Path)
    g.add_argument("src", type=Path, help="a model directory of the same checkpoint (manifest, tokenizer)")
    g.add_argument("out", type=Path)
    g.add_argument("--type", choices=GGUF_TYPES, default="q8_0")
    g.add_argument("--convert-script", type=Path, required=True)
    a = p.parse_args(argv)
    if a.target == "openvino":
        print(to_openvino(a.src.expanduser(), a.out.expanduser(), a.mode, a.precision))
    else:
        print(
            to_gguf(
                a.checkpoint.expanduser(), a.src.expanduser(), a.out.expanduser(), a.type, a.convert_script
            )
        )


if __name__ == "__main__":
    main()


__all__ = ["GGUF_TYPES", "OV_MODES", "main", "to_gguf", "to_openvino"]
