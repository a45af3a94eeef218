"""Every picture form the DaS reference and diffusers pass gives the latents the canonical form gives.

Canonical forms: `image` and `tracking_image` uint8 [H, W, 3], `tracking_video` uint8 [T, H, W, 3]. The
reference passes its tracking image as the first frame of a float [T, 3, H, W] tensor in [0, 1], so
[1, 3, H, W]; its trainer's validation passes it in [-1, 1]; it feeds the VAE [B, C, T, H, W].
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from PIL import Image

from das_core.errors import DasError
from das_core.model.inputs import to_unit_frames
from das_core.model.tiny import TINY_HEIGHT, TINY_WIDTH
from tests.model.conftest import assert_same_numbers

SHORT = 9  # tracking-video forms run at 9 frames (4k + 1): encoding 49 frames per form would be slow


def _unit(frame: np.ndarray) -> torch.Tensor:
    """uint8 [H, W, 3] as float [3, H, W] in [0, 1]."""
    return torch.from_numpy(frame).permute(2, 0, 1).float() / 255.0


# One picture, from uint8 [H, W, 3].
PICTURE_FORMS = {
    "PIL image": lambda a: Image.fromarray(a),
    "list of one PIL image": lambda a: [Image.fromarray(a)],
    "RGBA PIL image": lambda a: Image.fromarray(a).convert("RGBA"),
    "float HWC array in [0, 1]": lambda a: a.astype(np.float32) / 255,
    "float 1HWC array in [0, 1]": lambda a: (a.astype(np.float32) / 255)[None],
    "uint8 CHW tensor": lambda a: torch.from_numpy(a).permute(2, 0, 1),
    "float CHW tensor in [0, 1]": lambda a: _unit(a),
    "float 1CHW tensor in [0, 1] (the reference's tracking image)": lambda a: _unit(a)[None],
    "float64 1CHW tensor in [0, 1]": lambda a: _unit(a)[None].double(),
    "float 1CHW tensor in [-1, 1] (the reference trainer's tracking image)": lambda a: _unit(a)[None] * 2 - 1,
    "float 1HWC tensor in [0, 1]": lambda a: _unit(a).permute(1, 2, 0)[None],
}

# A video, from uint8 [T, H, W, 3].
VIDEO_FORMS = {
    "float TCHW tensor in [0, 1] (the reference's tracking tensor)": lambda v: _video(v),
    "float THWC array in [0, 1]": lambda v: v.astype(np.float32) / 255,
    "float TCHW tensor in [-1, 1]": lambda v: _video(v) * 2 - 1,
    "float 1TCHW tensor": lambda v: _video(v)[None],
    "float 1CTHW tensor (the reference's VAE input)": lambda v: _video(v).permute(1, 0, 2, 3)[None],
    "uint8 1THWC array": lambda v: v[None],
    "list of PIL frames": lambda v: [Image.fromarray(frame) for frame in v],
    "list of uint8 HWC arrays": lambda v: list(v),
    "list of float CHW tensors": lambda v: list(_video(v)),
}


def _video(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0


def _latents(pipe, image, *, tracking_video=None, tracking_latents=None, tracking_image=None, frames=49):
    torch.manual_seed(0)  # the tracking-video posterior sample uses the global RNG
    return pipe(
        image,
        "a red cube moving",
        tracking_video=tracking_video,
        tracking_latents=tracking_latents,
        tracking_image=tracking_image,
        num_frames=frames,
        height=TINY_HEIGHT,
        width=TINY_WIDTH,
        num_inference_steps=1,
        generator=torch.Generator().manual_seed(42),
        output_type="latent",
    ).frames


@pytest.fixture(scope="module")
def encoded(tiny_pipe, inputs):
    """Tracking latents of the canonical video, so picture forms run without encoding 49 frames each."""
    torch.manual_seed(5)
    with torch.no_grad():
        return tiny_pipe.encode_tracking_video(_video(inputs["tracking"]), "reference")


@pytest.fixture(scope="module")
def canonical(tiny_pipe, inputs, encoded):
    """Latents of the canonical forms: with tracking latents, and with a 9-frame tracking video."""
    image, tracking = inputs["image"], inputs["tracking"]
    return {
        "latents": _latents(tiny_pipe, image, tracking_latents=encoded, tracking_image=tracking[0]),
        "video": _latents(tiny_pipe, image, tracking_video=tracking[:SHORT], frames=SHORT),
    }


@pytest.mark.parametrize("form", list(PICTURE_FORMS))
def test_image_forms_give_the_canonical_latents(tiny_pipe, inputs, encoded, canonical, form):
    image = PICTURE_FORMS[form](inputs["image"])
    got = _latents(tiny_pipe, image, tracking_latents=encoded, tracking_image=inputs["tracking"][0])
    assert_same_numbers(got, canonical["latents"])


@pytest.mark.parametrize("form", list(PICTURE_FORMS))
def test_tracking_image_forms_give_the_canonical_latents(tiny_pipe, inputs, encoded, canonical, form):
    tracking_image = PICTURE_FORMS[form](inputs["tracking"][0])
    got = _latents(tiny_pipe, inputs["image"], tracking_latents=encoded, tracking_image=tracking_image)
    assert_same_numbers(got, canonical["latents"])


def test_the_reference_call_gives_the_canonical_latents(tiny_pipe, inputs, encoded, canonical):
    """testing/inference.py: a PIL image, the tracking latents and `tracking_maps[0:1]` of the float
    [T, C, H, W] tracking tensor in [0, 1]."""
    tracking = _video(inputs["tracking"])
    got = _latents(tiny_pipe, Image.fromarray(inputs["image"]), tracking_latents=encoded, tracking_image=tracking[0:1])
    assert_same_numbers(got, canonical["latents"])


@pytest.mark.parametrize("form", list(VIDEO_FORMS))
def test_tracking_video_forms_give_the_canonical_latents(tiny_pipe, inputs, canonical, form):
    tracking_video = VIDEO_FORMS[form](inputs["tracking"][:SHORT])
    got = _latents(tiny_pipe, inputs["image"], tracking_video=tracking_video, frames=SHORT)
    assert_same_numbers(got, canonical["video"])


def test_bfloat16_tracking_image_is_read_in_unit_range(inputs):
    """The reference runs in bf16, so its tracking image is a bf16 [1, 3, H, W] tensor."""
    frame = inputs["tracking"][0]
    frames = to_unit_frames(_unit(frame)[None].bfloat16(), "tracking_image", TINY_HEIGHT, TINY_WIDTH)
    assert frames.dtype == torch.float32 and frames.shape == (1, 3, TINY_HEIGHT, TINY_WIDTH)
    torch.testing.assert_close(frames, _unit(frame)[None], rtol=0, atol=2**-8)


@pytest.mark.parametrize(
    "value, message",
    [
        (np.zeros((2, 5, TINY_HEIGHT, TINY_WIDTH, 3), np.uint8), "batch of 2"),
        (np.zeros((5, TINY_HEIGHT, TINY_WIDTH), np.uint8), "3 colour channels"),
        ([], "empty list"),
        (np.zeros((TINY_HEIGHT, TINY_WIDTH, 3), np.float32) + 2, r"\[-1, 1\]"),
        ("frame.png", "got str"),
    ],
)
def test_forms_that_are_not_pictures_are_refused(value, message):
    with pytest.raises(DasError, match=message):
        to_unit_frames(value, "tracking_video", TINY_HEIGHT, TINY_WIDTH)
