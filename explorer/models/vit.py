"""A small Vision Transformer (Dosovitskiy et al. 2021) built on ``explorer.attention.MultiHeadAttention``.

An image is cut into ``patch_size`` x ``patch_size`` patches; each patch is one token, as a word is in a
sentence. In the manner of ``models/transformer.py``: a config dataclass, small blocks, a ``forward`` that
returns the logits, and every attention layer's weights read at its hook point by ``explorer.hooks.capture``.

    x_0  = [cls; E p_1; ...; E p_N] + position              (eq. 1; E: a linear map of each flattened patch)
    x    = x + MHA(LN(x));  x = x + MLP(LN(x))              (eq. 2, 3: pre-norm blocks)
    y    = head(LN(x_L)[0])  or  head(mean_t LN(x_L)[t])     (eq. 4: the CLS token, or the mean of all tokens)

``vit_maps`` turns one run into an ``ImageAttention``: per layer, where the CLS token looks among the patches,
and the attention rollout (Abnar and Zuidema, 2020), both at the image's size like CBAM's spatial maps.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

import torch
from torch import nn

from explorer.arguments import choice, flag, float_tensor, real, shown, text, whole
from explorer.attention import MultiHeadAttention, check_heads
from explorer.limits import MAX_WEIGHTS, Size, check_layers, check_size
from explorer.hooks import capture
from explorer.maps import AttentionMaps, ImageAttention, MapsInfo, rollout_weights
from explorer.models.cbam import localization
from explorer.models.transformer import FeedForward, sinusoidal_positions

POOLS = ("cls", "mean")
POSITIONALS = ("learned", "sinusoidal")
MIN_PATCHES_PER_SIDE = 2  # one patch would leave nothing to attend between
MAX_IMAGE_SIZE = 2**16  # pixels on a side: larger than any image a ViT of the budget reads


def valid_patch_sizes(image_size: int) -> list[int]:
    """The patch sizes that cut an ``image_size`` square into whole patches, at least 2 x 2 of them (the divisors, found
    in O(sqrt(image_size)) steps; a size beyond any image the budget allows is refused first)."""
    image_size = whole(image_size, "image size", 1, MAX_IMAGE_SIZE)
    small = [p for p in range(1, math.isqrt(image_size) + 1) if image_size % p == 0]
    divisors = sorted(set(small) | {image_size // p for p in small})
    return [p for p in divisors if image_size // p >= MIN_PATCHES_PER_SIDE]


@dataclass
class ViTConfig:
    """The architecture of a ``TinyViT``."""

    image_size: int = 32  # pixels on each side of the (square) input image
    patch_size: int = 4  # pixels on each side of a patch: (image_size / patch_size)^2 patch tokens
    channels: int = 1  # colour channels of the input: 1 grey, 3 RGB
    d_model: int = 64  # width of every token vector
    n_heads: int = 4  # attention heads per layer; each reads d_model / n_heads numbers
    n_layers: int = 4  # Transformer blocks
    pool: str = "cls"  # "cls": classify from a learned [CLS] token; "mean": from the mean of the patch tokens
    positional: str = "learned"  # "learned" position vectors, or fixed 2-D "sinusoidal" ones (row half, column half)
    n_classes: int = 4  # classes the head predicts
    d_ff: int | None = None  # hidden width of each block's MLP; 2 x d_model when None (small data, small MLP)
    dropout: float = 0.0  # dropout on attention weights and MLP outputs

    def __post_init__(self):
        """Every field checked, then the size worked out: a config that cannot be built, or is over the machine's
        budget, is refused before any module exists."""
        self.image_size = whole(self.image_size, "image size", 1, MAX_IMAGE_SIZE)
        self.patch_size = whole(self.patch_size, "patch size", 1, self.image_size)
        self.channels = whole(self.channels, "number of channels", 1, MAX_WEIGHTS)
        self.n_layers = check_layers("A TinyViT", whole(self.n_layers, "number of layers n_layers", 1))
        self.d_model, self.n_heads = check_heads(self.d_model, self.n_heads)
        self.pool = choice(self.pool, "pooling", POOLS)
        self.positional = choice(self.positional, "positional encoding", POSITIONALS)
        self.n_classes = whole(self.n_classes, "number of classes n_classes", 2, MAX_WEIGHTS)
        self.d_ff = 2 * self.d_model if self.d_ff is None else whole(self.d_ff, "MLP width d_ff", 1, MAX_WEIGHTS)
        self.dropout = real(self.dropout, "dropout", 0.0, below=1.0)
        if self.image_size % self.patch_size or self.image_size // self.patch_size < MIN_PATCHES_PER_SIDE:
            valid = valid_patch_sizes(self.image_size)
            raise ValueError(f"A patch size of {self.patch_size} does not cut a {self.image_size} x {self.image_size} "
                             f"image into a grid of at least 2 x 2 whole patches. Valid patch sizes: "
                             f"{', '.join(map(str, valid[:12])) or 'none (the image is too small)'}.")
        if self.positional == "sinusoidal" and self.d_model % 4:
            raise ValueError(f"2-D sinusoidal positions give half the width to rows and half to columns, each in "
                             f"sine/cosine pairs: d_model must be a multiple of 4, got {self.d_model}.")
        check_size(f"A TinyViT of width {self.d_model:,} over {self.grid ** 2:,} patches", self.size(), "for one image")

    def size(self, batch: int = 1) -> Size:
        """Weights and activations worked out from the config (before anything is built) for ``batch`` images."""
        d, f, h, t = self.d_model, self.d_ff, self.n_heads, self.grid ** 2 + 1
        block = 4 * d * d + 4 * d + 2 * d * f + f + 5 * d  # attention, MLP, two LayerNorms
        weights = self.channels * self.patch_size ** 2 * d + d + t * d + self.n_layers * block + (d + 1) * self.n_classes
        kept = batch * (t * (10 * d + 2 * f) + 3 * h * t * t)  # per block: per token and per query-key pair
        return Size(weights, self.n_layers * kept + batch * self.channels * self.image_size ** 2)

    @property
    def grid(self) -> int:
        """Patches on each side."""
        return self.image_size // self.patch_size

    def to_dict(self) -> dict:
        return asdict(self)


def patch_labels(grid: int, cls: bool = True) -> list[str]:
    """Token labels: ``"CLS"`` (with a CLS token), then ``"r0c0"``, ``"r0c1"``, ... row by row."""
    return (["CLS"] if cls else []) + [f"r{r}c{c}" for r in range(grid) for c in range(grid)]


def patch_index(label: str, grid: int) -> int:
    """The index among the patches (row by row) of a label such as "r2c3"; a ValueError says which labels exist."""
    match = re.fullmatch(r"r(\d{1,6})c(\d{1,6})", text(label, "patch").strip())
    if not match or not all(int(n) < grid for n in match.groups()):
        raise ValueError(f"There is no patch {shown(label)}: the patches are r0c0 to r{grid - 1}c{grid - 1}.")
    return int(match[1]) * grid + int(match[2])


def sinusoidal_positions_2d(grid: int, d_model: int) -> torch.Tensor:
    """Row position in the first half of each vector, column position in the second, ``[grid * grid, d_model]``."""
    axis = sinusoidal_positions(grid, d_model // 2)  # [grid, d / 2]
    rows = axis[:, None, :].expand(grid, grid, -1)
    cols = axis[None, :, :].expand(grid, grid, -1)
    return torch.cat([rows, cols], dim=-1).reshape(grid * grid, d_model)


class PatchEmbedding(nn.Module):
    """Cut the image into patches and map each to a vector: a convolution with stride = kernel = patch size."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.project = nn.Conv2d(config.channels, config.d_model, config.patch_size, stride=config.patch_size)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.project(pixel_values).flatten(2).transpose(1, 2)  # [B, N patches, d], row by row


class Block(nn.Module):
    """One pre-norm layer: x + MHA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.attention_norm = nn.LayerNorm(config.d_model)
        self.attention = MultiHeadAttention(config.d_model, config.n_heads, dropout=config.dropout)
        self.mlp_norm = nn.LayerNorm(config.d_model)
        self.mlp = FeedForward(config.d_model, config.d_ff, config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x))
        return x + self.mlp(self.mlp_norm(x))


class TinyViT(nn.Module):
    """``forward(pixel_values [B, C, H, W])`` gives logits ``[B, n_classes]``.

    The weights of every layer pass through ``blocks.<i>.attention.hook_pattern`` (``[B, H, T, T]``, with
    ``T`` = 1 + patches for CLS pooling, the CLS token first).
    """

    def __init__(self, config: ViTConfig):
        super().__init__()
        if not isinstance(config, ViTConfig):
            raise TypeError(f"A TinyViT is built from a ViTConfig, got {shown(config)}.")
        self.config = config
        n_patches, d = config.grid ** 2, config.d_model
        self.patches = PatchEmbedding(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d)) if config.pool == "cls" else None
        if config.positional == "learned":
            self.positions = nn.Parameter(torch.zeros(1, n_patches, d))
        else:
            self.register_buffer("positions", sinusoidal_positions_2d(config.grid, d)[None], persistent=False)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.final_norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, config.n_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=0.02)
        if isinstance(self.positions, nn.Parameter):
            nn.init.normal_(self.positions, std=0.02)

    @property
    def tokens(self) -> list[str]:
        return patch_labels(self.config.grid, cls=self.config.pool == "cls")

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.patches(check_images(self.config, pixel_values)) + self.positions  # [B, N, d]
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1)  # [B, 1 + N, d]
        for block in self.blocks:
            x = block(x)
        x = self.final_norm(x)
        pooled = x[:, 0] if self.cls_token is not None else x.mean(dim=1)
        return self.head(pooled)


def check_images(config: ViTConfig, pixel_values: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]`` images of the size and channels the model reads; a ValueError says what differs."""
    pixel_values = float_tensor(pixel_values, "images", dims=(3, 4))
    if pixel_values.dim() == 3:
        pixel_values = pixel_values[None]
    wanted = (config.channels, config.image_size, config.image_size)
    if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != wanted:
        raise ValueError(f"This ViT reads images of shape [B, {', '.join(map(str, wanted))}], "
                         f"got {tuple(pixel_values.shape)}.")
    return pixel_values


@torch.no_grad()
def vit_attention(model: TinyViT, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One run in eval mode: ``(logits [B, classes], weights [B, layers, heads, T, T])`` read at the hook points."""
    was_training = model.training
    model.eval()
    try:
        with capture(model, "blocks.*.attention.hook_pattern") as captured:
            logits = model(pixel_values)
    finally:
        model.train(was_training)
    return logits, captured.stack("blocks.*.attention.hook_pattern")


def attention_maps(model: TinyViT, image: torch.Tensor) -> AttentionMaps:
    """The attention of every layer and head over one image ``[C, H, W]``, labelled "CLS", "r0c0", ...."""
    _, weights = vit_attention(model, check_images(model.config, image)[:1])
    return AttentionMaps(tokens=model.tokens, weights=weights[0], meta=MapsInfo(source="TinyViT"))


def pooled_rows(weights: torch.Tensor, pool: str) -> torch.Tensor:
    """What the pooled output attends to, over the patches only, ``[..., patches]``.

    ``weights`` ``[..., T, T]``. With CLS pooling it is the CLS token's row; with mean pooling, the mean of
    all rows (the mean-pooled vector is the mean of the tokens, so its attention is the mean of theirs).
    """
    if pool == "cls":
        return weights[..., 0, 1:]
    return weights.mean(dim=-2)


def to_image(patch_values: torch.Tensor, config: ViTConfig) -> torch.Tensor:
    """Per-patch values ``[..., patches]`` as maps ``[..., H, W]`` at the image size, each scaled to a maximum of 1.

    Each patch's value fills its whole patch (nearest, not bilinear: a patch token sees its square and
    nothing else), so a map's mass in a box is the patches' mass there. Scaling to 1, as Grad-CAM is, lets
    the gallery draw every map on one 0..1 scale; it does not change ``localization``.
    """
    grid = config.grid
    maps = patch_values.reshape(*patch_values.shape[:-1], grid, grid)
    maps = maps.repeat_interleave(config.patch_size, dim=-2).repeat_interleave(config.patch_size, dim=-1)
    return maps / maps.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)


def map_name(config: ViTConfig) -> str:
    """What the per-layer map shows: the CLS token's attention, or the mean token's."""
    return "CLS map" if config.pool == "cls" else "mean-token map"


def vit_maps(model: TinyViT, images: torch.Tensor, heads: bool = False) -> ImageAttention:
    """The ViT's maps over ``images`` ``[B, C, H, W]``, each ``[B, H, W]`` like CBAM's spatial maps.

    ``spatial[l]``: where the pooled output (the CLS token, or the mean of all tokens) looks among the patches
    in layer ``l``, the mean over heads; ``rollout[l]``: the same read through the rollout of layers 0..l;
    ``heads[l]`` ``[B, heads, H, W]``, with ``heads=True``: each head alone.
    """
    pixel_values, heads = check_images(model.config, images), flag(heads, "heads switch")
    logits, weights = vit_attention(model, pixel_values)  # [B, L, H, T, T]
    config = model.config
    spatial = to_image(pooled_rows(weights.mean(dim=2), config.pool), config)  # [B, L, H, W]
    rolled = to_image(pooled_rows(rollout_weights(weights), config.pool), config)  # [B, L, H, W]
    per_head = to_image(pooled_rows(weights, config.pool), config) if heads else None  # [B, L, heads, H, W]
    return ImageAttention(channel=[], spatial=list(spatial.unbind(1)), rollout=list(rolled.unbind(1)),
                          heads=[] if per_head is None else list(per_head.unbind(1)), images=pixel_values,
                          predictions=tuple(logits.argmax(dim=1).tolist()))


def patch_maps(model: TinyViT, images: torch.Tensor, patch: str, layer: int = -1, head: int | None = None) -> torch.Tensor:
    """Where patch ``patch`` ("r2c3") looks among the patches in layer ``layer``: its attention row for head
    ``head`` (the mean over heads for None), ``[B, H, W]`` at the image size like ``vit_maps``' maps."""
    config = model.config
    index = patch_index(patch, config.grid)
    layer = whole(layer, "layer", -config.n_layers, config.n_layers - 1)
    head = None if head is None else whole(head, "head", 0, config.n_heads - 1)
    _, weights = vit_attention(model, check_images(config, images))  # [B, L, heads, T, T]
    first = 1 if config.pool == "cls" else 0  # the patches' tokens come after the CLS token
    rows = weights[:, layer, :, first + index, first:]  # [B, heads, patches]
    return to_image(rows.mean(dim=1) if head is None else rows[:, head], config)


def probe_vit(model: TinyViT, images: torch.Tensor, boxes=None, keep: int | None = None) -> ImageAttention:
    """The ViT's maps with every head, and with boxes the localization of the last layer's CLS map and rollout.

    Scores use all ``images``; the record keeps the maps of the first ``keep`` (all by default), so a
    trainer's many snapshots stay small.
    """
    record = vit_maps(model, images, heads=True)
    scores = {}
    if boxes is not None:
        scores = {map_name(model.config): localization(record.spatial[-1], boxes),
                  "rollout": localization(record.rollout[-1], boxes)}
    n = len(record.predictions) if keep is None else keep
    return ImageAttention(channel=[], spatial=[s[:n] for s in record.spatial], rollout=[r[:n] for r in record.rollout],
                          heads=[h[:n] for h in record.heads], images=record.images[:n],
                          predictions=record.predictions[:n], localization=scores)
