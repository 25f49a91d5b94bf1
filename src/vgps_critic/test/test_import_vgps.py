"""`vgps critic import-vgps` on checkpoints written in the paper's released layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import perturbed_params, random_inputs
from reference_critic import reference_get_q_values
from release_layout import agent_tree, write_legacy_file, write_orbax_dir

import vgps_critic
from vgps.cli.main import main as vgps_main
from vgps_critic import ActionSpace, CheckpointError, CriticConfig
from vgps_critic.import_vgps import import_vgps, infer_config, parse_action_bounds

# The paper's topology at a small width so the suite stays fast; the importer reads it back.
TOPOLOGY = CriticConfig(stage_sizes=(3, 4, 6, 3), num_filters=8, image_size=(64, 64),
                        language_dim=512)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """(root dir, online params, target params) with both saved layouts present."""
    root = tmp_path_factory.mktemp("release")
    online = perturbed_params(TOPOLOGY, seed=1)
    target = perturbed_params(TOPOLOGY, seed=2)
    tree = agent_tree(online, target, step=500_000)
    write_orbax_dir(tree, root / "orbax" / "checkpoint_500000")
    write_orbax_dir(agent_tree(online, online, step=100_000), root / "orbax" / "checkpoint_100000")
    write_legacy_file(tree, root / "legacy_checkpoint_500000")
    return root, online, target


def _expected_q(params, image, language, actions, space):
    return reference_get_q_values(params, image[None].repeat(len(actions), 0), language[None],
                                  space.normalize(actions))


@pytest.mark.parametrize("source", ["orbax/checkpoint_500000", "orbax",
                                    "legacy_checkpoint_500000"])
def test_import_reproduces_the_released_q_values(source, release, tmp_path, rng):
    root, _, target = release
    space = ActionSpace.named("bridge")
    card = import_vgps(root / source, tmp_path / "imported", space, image_size=64)
    assert card.language_encoder == "muse" and card.config.language_dim == 512
    assert card.config.stage_sizes == (3, 4, 6, 3) and card.config.num_filters == 8
    assert card.training["steps"] == 500_000  # the parent dir resolves to the latest step
    critic = vgps_critic.load(tmp_path / "imported")
    image, language, actions = random_inputs(rng, TOPOLOGY, 6, space)
    language = np.abs(language)
    got = critic.q(critic.encode(image, language), actions)
    np.testing.assert_allclose(got, _expected_q(target, image, language, actions, space),
                               atol=1e-4)


def test_online_parameters_on_request_differ_from_target(release, tmp_path, rng):
    root, online, target = release
    space = ActionSpace.named("identity")
    import_vgps(root / "orbax/checkpoint_500000", tmp_path / "online", space, image_size=64,
                which="online")
    critic = vgps_critic.load(tmp_path / "online")
    image, language, _ = random_inputs(rng, TOPOLOGY, 1)
    actions = rng.uniform(-1, 1, (5, 7)).astype(np.float32)
    got = critic.q(critic.encode(image, language), actions)
    np.testing.assert_allclose(got, _expected_q(online, image, language, actions, space),
                               atol=1e-4)
    assert np.abs(got - _expected_q(target, image, language, actions, space)).max() > 1e-3


def test_infer_config_reads_the_paper_architecture():
    params = perturbed_params(CriticConfig(), seed=0)
    config = infer_config(params, (256, 256))
    assert config == CriticConfig()


def test_cli_import_and_info(release, tmp_path, capsys):
    root, _, _ = release
    bounds = tmp_path / "bounds.json"
    bounds.write_text(json.dumps({"min": [-0.1] * 6 + [0], "max": [0.1] * 6 + [1]}))
    out = tmp_path / "cli"
    code = vgps_main(["critic", "import-vgps", str(root / "orbax"), "--out", str(out),
                      "--action-bounds", str(bounds), "--image-size", "64"])
    assert code == 0
    assert "muse (512-d)" in capsys.readouterr().out
    assert vgps_main(["critic", "info", str(out)]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["action_space"]["high"][0] == 0.1 and card["image_size"] == [64, 64]
    # refuses to overwrite without --force, with a message and no traceback
    assert vgps_main(["critic", "import-vgps", str(root / "orbax"), "--out", str(out),
                      "--action-bounds", "bridge"]) == 2
    assert "exists" in capsys.readouterr().err


@pytest.mark.parametrize("spec, low0", [("bridge", -0.05), ("identity", -1.0),
                                        ('{"low": [-2,-2,-2,-2,-2,-2,0], "high": [2,2,2,2,2,2,1]}',
                                         -2.0)])
def test_action_bound_specs(spec, low0):
    assert parse_action_bounds(spec).low[0] == low0


def test_bad_action_bounds_spec():
    with pytest.raises(ValueError, match=r"bridge.*identity"):
        parse_action_bounds('{"lo": [1]}')


def test_foreign_and_broken_sources(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        import_vgps(tmp_path / "nope", tmp_path / "o", ActionSpace.named("bridge"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="holds no V-GPS checkpoint"):
        import_vgps(tmp_path / "empty", tmp_path / "o", ActionSpace.named("bridge"))
    (tmp_path / "garbage").write_bytes(b"\xc1\xc1\xc1 not msgpack")
    with pytest.raises(CheckpointError, match="not a readable"):
        import_vgps(tmp_path / "garbage", tmp_path / "o", ActionSpace.named("bridge"))
    from release_layout import pack_tree
    (tmp_path / "other").write_bytes(pack_tree({"params": {"w": np.zeros(3, np.float32)}}))
    with pytest.raises(CheckpointError, match="'state' entry"):
        import_vgps(tmp_path / "other", tmp_path / "o", ActionSpace.named("bridge"))
