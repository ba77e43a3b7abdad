"""Pretrained vision transformers through the shared load(): a tiny random ViT and DeiT saved with their processors."""

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.maps import rollout
from explorer.models.pretrained import expect_family, load


def save_tiny(folder, kind="vit", processor=True):
    """A random 2-layer, width-32 model of ``kind`` with its image processor config, saved to ``folder``."""
    import transformers

    options = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, image_size=32,
                   patch_size=8)
    torch.manual_seed(0)
    if kind == "vit":
        model = transformers.ViTModel(transformers.ViTConfig(**options))
    else:
        model = transformers.DeiTModel(transformers.DeiTConfig(**options))
    model.save_pretrained(folder)
    if processor:
        from transformers import ViTImageProcessor

        ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tiny-vit"))


def picture(size=(40, 30), mode="RGB"):
    rng = np.random.default_rng(0)
    channels = {"RGB": 3, "RGBA": 4}.get(mode)
    shape = (size[1], size[0], channels) if channels else (size[1], size[0])
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode)


def reference(folder, image):
    """transformers' own output_attentions for the processed image, eager attention."""
    from transformers import AutoImageProcessor, AutoModel

    processor = AutoImageProcessor.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    with torch.no_grad():
        output = model(**processor(images=image.convert("RGB"), return_tensors="pt"), output_attentions=True)
    return torch.stack(output.attentions)[:, 0]


def test_maps_equal_transformers_output_attentions_for_image_array_and_path(folder, tmp_path):
    vit = load(folder)
    assert vit.family == "vision" and vit.n_layers == 2 and vit.n_heads == 4
    assert vit.model.config._attn_implementation == "sdpa"  # read at the SDPA calls, compared with eager below
    image = picture()
    expected = reference(folder, image)
    image.save(tmp_path / "photo.png")
    for given in (image, np.asarray(image), tmp_path / "photo.png", str(tmp_path / "photo.png")):
        maps = vit.attend(given)
        torch.testing.assert_close(maps.weights, expected)
    assert maps.tokens[:3] == ("CLS", "r0c0", "r0c1") and len(maps.tokens) == 17 and maps.meta.special[0]
    assert rollout(maps).shape == (2, 17, 17) and maps.meta.notice == ""


@pytest.mark.parametrize("image, words", [
    (picture(mode="L"), "Grey image converted to RGB"), (picture(mode="RGBA"), "Transparent image converted"),
    (np.full((20, 20, 3), 60000, dtype=np.uint16), "16-bit image scaled"),
    (picture(size=(3000, 2000)), "shrunk to at most 1024")])
def test_odd_images_are_converted_with_a_notice(folder, image, words):
    maps = load(folder).attend(image)
    assert words in maps.meta.notice and maps.weights.shape == (2, 4, 17, 17)


def test_deit_has_a_distillation_token(tmp_path):
    maps = load(save_tiny(tmp_path / "deit", "deit")).attend(picture())
    assert maps.tokens[:3] == ("CLS", "DIST", "r0c0") and len(maps.tokens) == 18


def test_bad_inputs_are_clear_errors(folder, tmp_path):
    vit = load(folder)
    with pytest.raises(ValueError, match="no image file"):
        vit.attend(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(ValueError, match="not an image"):
        vit.attend(tmp_path / "notes.png")
    with pytest.raises(ValueError, match="uint8"):
        vit.attend(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="no image processor"):
        load(save_tiny(tmp_path / "bare", processor=False))
    with pytest.raises(ValueError, match="open it in the Vision tab"):
        expect_family(vit, "encoder")
    with pytest.raises(ValueError, match="open it in the Pretrained tab"):
        expect_family(load(), "vision")
