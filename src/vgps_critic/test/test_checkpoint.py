"""Checkpoint round trip and every way a checkpoint directory can be broken."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import SMALL, perturbed_params, random_inputs

import vgps_critic
from vgps_critic import CheckpointError, load_checkpoint, save_checkpoint

# orbax's asyncio readers leave unretrieved futures behind when a read fails on purpose
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def _leaves(tree):
    return {jax.tree_util.keystr(p): np.asarray(x)
            for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def test_round_trip_is_bit_exact(tmp_path, small_card):
    params = perturbed_params(SMALL, seed=11)
    written = save_checkpoint(tmp_path / "c", small_card, params)
    card, loaded = load_checkpoint(tmp_path / "c")
    a, b = _leaves(params), _leaves(loaded)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        assert a[key].tobytes() == b[key].tobytes(), key
    assert card == written
    assert card.param_count == vgps_critic.model.count_params(params)
    assert len(card.params_sha256) == 64 and card.critic_id.startswith("small-test@")


def test_a_checkpoint_names_no_path_and_loads_after_a_move(tmp_path, small_card):
    written = save_checkpoint(tmp_path / "c", small_card, perturbed_params(SMALL, seed=3))
    for f in (tmp_path / "c").rglob("*"):
        if f.is_file():
            assert str(tmp_path).encode() not in f.read_bytes(), f
    (tmp_path / "c").rename(tmp_path / "moved")
    card, _ = load_checkpoint(tmp_path / "moved")
    assert card == written


def test_card_records_what_deployment_needs(small_checkpoint):
    raw = json.loads((Path(small_checkpoint) / "card.json").read_text())
    assert raw["format"] == "vgps-critic" and raw["format_version"] == 1
    assert raw["image_size"] == [32, 32]
    assert raw["language"] == {"encoder": "minilm-l6-v2", "dim": 384}
    assert raw["action_space"]["low"][0] == -0.05 and raw["action_space"]["high"][6] == 1.0
    assert raw["architecture"]["stage_sizes"] == [1, 2]
    assert raw["reward"]["discount"] == 0.98
    assert raw["param_count"] > 0


def test_loaded_critic_scores_like_the_saved_parameters(small_checkpoint, rng):
    critic = vgps_critic.load(small_checkpoint)
    reference = vgps_critic.Critic(critic.card, perturbed_params(SMALL))
    image, language, actions = random_inputs(rng, SMALL, 4)
    np.testing.assert_array_equal(critic.q(critic.encode(image, language), actions),
                                  reference.q(reference.encode(image, language), actions))


def test_refuses_to_overwrite(tmp_path, small_card):
    save_checkpoint(tmp_path / "c", small_card, perturbed_params(SMALL))
    with pytest.raises(FileExistsError, match="exists"):
        save_checkpoint(tmp_path / "c", small_card, perturbed_params(SMALL))


def test_replacing_keeps_the_model_cards_readme_and_nothing_else(tmp_path, small_card):
    path = tmp_path / "c"
    save_checkpoint(path, small_card, perturbed_params(SMALL))
    (path / "README.md").write_text("# my critic\n")
    (path / "notes.txt").write_text("scratch\n")
    replaced = dataclasses.replace(small_card, name="replaced")
    save_checkpoint(path, replaced, perturbed_params(SMALL, seed=3), overwrite=True)
    assert (path / "README.md").read_text() == "# my critic\n"
    assert not (path / "notes.txt").exists()
    assert vgps_critic.load(path).card.name == "replaced"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]  # no staging left behind


def _copy(src: str, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return dst


def _edit_card(path: Path, fn) -> None:
    raw = json.loads((path / "card.json").read_text())
    fn(raw)
    (path / "card.json").write_text(json.dumps(raw))


def _biggest_file(path: Path) -> Path:
    return max((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def _corrupt_bytes(path: Path) -> None:
    target = _biggest_file(path / "params")
    data = bytearray(target.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0xFF
    target.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    target = _biggest_file(path / "params")
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])


BREAKAGES = {
    "missing directory": (lambda p: shutil.rmtree(p), "does not exist"),
    "no card": (lambda p: (p / "card.json").unlink(), "no card.json"),
    "card not json": (lambda p: (p / "card.json").write_text('{"format": "vgps-cri'),
                      "not valid JSON"),
    "foreign card": (lambda p: _edit_card(p, lambda c: c.update(format="octo")),
                     "not a vgps critic card"),
    "future version": (lambda p: _edit_card(p, lambda c: c.update(format_version=99)),
                       "format_version 99"),
    "card field missing": (lambda p: _edit_card(p, lambda c: c.pop("language")),
                           "missing the field 'language'"),
    "architecture mismatch": (
        lambda p: _edit_card(p, lambda c: c["architecture"].update(num_filters=16)),
        "do not match the card's architecture"),
    "bad architecture value": (
        lambda p: _edit_card(p, lambda c: c["architecture"].update(num_filters=6)),
        "num_filters=6"),
    "encoder/dim mismatch": (
        lambda p: _edit_card(p, lambda c: c["language"].update(encoder="muse")),
        "512-d embeddings"),
    "bad bounds": (lambda p: _edit_card(p, lambda c: c["action_space"].update(high=[0.0] * 7)),
                   "must exceed low"),
    "no params": (lambda p: shutil.rmtree(p / "params"), "no params/ directory"),
    "truncated params": (_truncate, "corrupt or truncated|sha256"),
    "flipped bytes": (_corrupt_bytes, "corrupt or truncated|sha256"),
    "param count lie": (lambda p: _edit_card(p, lambda c: c.update(param_count=5)),
                        "param_count=5"),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES), ids=list(BREAKAGES))
def test_broken_checkpoints_give_a_clear_error(breakage, small_checkpoint, tmp_path):
    path = _copy(small_checkpoint, tmp_path)
    breaker, message = BREAKAGES[breakage]
    breaker(path)
    with pytest.raises(CheckpointError, match=message):
        vgps_critic.load(path)


def test_file_instead_of_directory(tmp_path):
    path = tmp_path / "critic.msgpack"
    path.write_bytes(b"\x81\xa5state\x80")
    with pytest.raises(CheckpointError, match=r"is a file.*import-vgps"):
        vgps_critic.load(path)


def test_release_checkpoint_directory_points_to_importer(tmp_path):
    (tmp_path / "checkpoint_500000").mkdir()
    with pytest.raises(CheckpointError, match="import-vgps"):
        vgps_critic.load(tmp_path)
