"""The batch spec format: defaults, relative paths, and one clear error per kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from das_core.workflow.batch_spec import BatchSpecError, load_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

TRACKS_SHOT = '[[shot]]\nname = "a"\ntracks = "a.npz"\nimage = "a.png"\nprompt = "p"\n'
BLEND_SHOT = '[[shot]]\nname = "a"\nblend = "a.blend"\nprompt = "p"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return path


def test_example_spec_loads_with_defaults_and_paths_relative_to_the_spec():
    spec = load_spec(EXAMPLES / "batch.toml")
    walk, orbit, ball = spec.shots
    assert [shot.name for shot in spec.shots] == ["walk", "orbit", "ball"]
    assert walk.blend == EXAMPLES / "walk_cycle" / "walk_cycle.blend" and walk.image is None
    assert (walk.camera, walk.frame_start, walk.frame_end) == ("Camera", 1, 49)
    assert orbit.seed == 7 and walk.seed == 42 and ball.fps is None  # None: the shot's own frame rate
    assert {shot.frames for shot in spec.shots} == {"every"}
    assert (ball.steps, ball.guidance) == (None, None)  # None: the server's model's
    assert ball.tracks == EXAMPLES / "thrown_ball" / "tracks.npz" and ball.blend is None
    assert ball.negative_prompt == "blurry, distorted, low quality" and walk.negative_prompt is None
    for shot in spec.shots:
        for path in (shot.blend, shot.tracks, shot.image):
            assert path is None or path.is_file()


def test_defaults_apply_and_shots_override(tmp_path):
    spec = load_spec(
        write(
            tmp_path,
            """
server = "tcp://10.0.0.5:5555"
[defaults]
steps = 20
fps = 12
frames = "model"
[[shot]]
name = "a"
tracks = "a.npz"
image = "a.png"
prompt = "p"
[[shot]]
name = "b"
blend = "b.blend"
range = "10:"
prompt = "q"
steps = 30
frames = "every"
""",
        )
    )
    first, second = spec.shots
    assert spec.server == "tcp://10.0.0.5:5555"
    assert (first.steps, second.steps, first.fps) == (20, 30, 12.0)
    assert (first.frames, second.frames) == ("model", "every")
    assert (second.frame_start, second.frame_end) == (10, None)
    assert first.tracks == tmp_path / "a.npz"
    assert first.parameters()["tracks"] == str(tmp_path / "a.npz")


@pytest.mark.parametrize(
    "body, message",
    [
        (TRACKS_SHOT + "sed = 3\n", "unknown key 'sed'"),
        (TRACKS_SHOT + 'steps = "10"\n', "steps must be a whole number"),
        (TRACKS_SHOT + "seed = true\n", "seed must be a whole number"),
        ('[[shot]]\nname = "a"\ntracks = "a.npz"\nprompt = "p"\n', "needs image"),
        ('[[shot]]\nname = "a"\nblend = "a.blend"\ntracks = "a.npz"\nprompt = "p"\n', "exactly one of blend"),
        ('[[shot]]\nname = "a"\nblend = "a.blend"\n', "needs a prompt"),
        ('[[shot]]\nname = "a b"\nblend = "a.blend"\nprompt = "p"\n', "needs a name"),
        (BLEND_SHOT + 'range = "9:2"\n', "ends before it starts"),
        (BLEND_SHOT + 'frames = "all"\n', "frames must be 'every' or 'model' (what result.mp4 holds), got 'all'"),
        (BLEND_SHOT + 'frames = "1:49"\n', 'a blend shot\'s frame range is range = "1:49" now'),
        ("[defaults]\nframes = 24\n" + BLEND_SHOT, "[defaults] frames must be a string, got 24"),
        (BLEND_SHOT + "samples = 49\n", "has samples, which is gone: blend shots export every frame"),
        (TRACKS_SHOT + 'range = "1:9"\n', "range only applies to blend shots"),
        (BLEND_SHOT + 'mode = "wire"\n', "mode must be one of"),
        (BLEND_SHOT + BLEND_SHOT, "used more than once: a"),
        (TRACKS_SHOT + 'camera = "Cam"\n', "camera only applies"),
        ("[defaults]\nsteps = 5\n", "no shots"),
        ("shots = 1\n", "1 unknown top-level key: shots"),
        ("[[shot]\n", "not valid TOML"),
    ],
)
def test_mistakes_are_named(tmp_path, body, message):
    with pytest.raises(BatchSpecError) as error:
        load_spec(write(tmp_path, body))
    assert message in str(error.value)
    assert str(tmp_path / "spec.toml") in str(error.value)


def test_missing_spec_file(tmp_path):
    with pytest.raises(BatchSpecError, match="no such batch spec file"):
        load_spec(tmp_path / "nope.toml")


def test_unset_sampling_comes_from_the_servers_model(tmp_path):
    from das_core.tracking.window import DAS_WINDOW, WAN_MOVE_WINDOW

    unset, chosen = load_spec(write(tmp_path, TRACKS_SHOT + BLEND_SHOT.replace('"a"', '"b"', 1) + "steps = 3\n")).shots
    values = lambda shot: (shot.steps, shot.guidance, shot.fps)  # noqa: E731
    assert values(unset.for_window(DAS_WINDOW)) == (50, 6.0, None)  # fps None: the result's own rate
    assert values(unset.for_window(WAN_MOVE_WINDOW)) == (40, 5.0, None)
    assert values(chosen.for_window(WAN_MOVE_WINDOW)) == (3, 5.0, None)
