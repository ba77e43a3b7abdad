"""CBAM (Woo et al., 2018): channel and spatial attention in a small residual CNN, and the maps it keeps.

Channel attention (eq. 2):  M_c(F) = sigmoid( MLP(AvgPool(F)) + MLP(MaxPool(F)) )            [B, C]
Spatial attention (eq. 3):  M_s(F) = sigmoid( conv_kxk([AvgPool_c(F); MaxPool_c(F)]) )       [B, 1, H, W]
The module (eq. 1):         F' = M_c(F) * F,   F'' = M_s(F') * F'

Each gate passes its weights through a hook point, so the maps drawn (``cbam_maps``) are the ones the network
really used. ``grad_cam`` (Selvaraju et al., 2017) reads the same model with hooks, for comparison.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from explorer.arguments import choice, flag, float_tensor, items, plain, shown, whole
from explorer.hooks import HookPoint, capture
from explorer.limits import MAX_WEIGHTS, Size, check_layers, check_size
from explorer.maps import ImageAttention

POOL_TYPES = ("avg", "max", "lp", "lse")
MERGES = ("sum", "concat")
ORDERS = ("channel-spatial", "spatial-channel", "parallel")
KERNEL_SIZES = (3, 5, 7)
MAX_KERNEL = 31  # the spatial gate's kernel: the paper's 7 and a few more odd sizes, never a convolution of the image size
PAPER = dict(cbam=True, channel=True, spatial=True, order="channel-spatial", pool=("avg", "max"), merge="sum",
             ratio=16, kernel_size=7)  # the settings of Woo et al. (2018)
PRESETS = {
    "CBAM: paper defaults": PAPER,
    "CBAM: average vs max pooling": dict(PAPER, pool=("avg",)),
    "CBAM: max pooling only": dict(PAPER, pool=("max",)),
    "CBAM: spatial attention only": dict(PAPER, channel=False),
    "CBAM: channel attention only": dict(PAPER, spatial=False),
    "CBAM: spatial first": dict(PAPER, order="spatial-channel"),
    "CBAM: parallel gates": dict(PAPER, order="parallel"),
}
PRESET_NOTES = {"CBAM: average vs max pooling": "Average pooling only: train, then tick max and Reset to compare."}


def check_pool(pool) -> tuple[str, ...]:
    """The pool types as a tuple (a name, or a list of names); a ValueError if none is given or one is unknown."""
    pool = (pool,) if isinstance(plain(pool), str) else tuple(items(pool, "pooling types", len(POOL_TYPES) * 2))
    if not pool:
        raise ValueError(f"CBAM needs at least one pooling type ({', '.join(POOL_TYPES)}).")
    return tuple(choice(p, "pooling type", POOL_TYPES) for p in pool)


def check_options(ratio, kernel_size, order, channel, spatial, pool, merge) -> dict:
    """CBAM's settings checked one by one, in the form its modules take."""
    kernel_size = whole(kernel_size, "kernel size", 1, MAX_KERNEL)
    if kernel_size % 2 == 0:
        raise ValueError(f"The kernel size must be odd (3, 5 or 7) so the map stays centred, got {kernel_size}.")
    return dict(ratio=whole(ratio, "reduction ratio", 1, MAX_WEIGHTS), kernel_size=kernel_size,
                order=choice(order, "order of the gates", ORDERS), channel=flag(channel, "channel attention switch"),
                spatial=flag(spatial, "spatial attention switch"), pool=check_pool(pool),
                merge=choice(merge, "merge", MERGES))


def cbam_size(config: dict, batch: int = 1, height: int = 32, width: int | None = None) -> Size:
    """Weights and activations of a ``CBAMNet`` of ``config`` worked out with arithmetic (before it is built), for
    ``batch`` images of ``height`` x ``width`` pixels."""
    w, stages, width = config["width"], config["stages"], width or height
    options = {**PAPER, **{k: v for k, v in config.items() if k in PAPER}}
    pools = len(options["pool"])
    hidden = max(1, w // options["ratio"])
    gate = ((w * pools if options["merge"] == "concat" else w) * hidden + hidden + hidden * w + w if options["channel"]
            else 0) + (pools * options["kernel_size"] ** 2 + 1 if options["spatial"] else 0)
    stage = 19 * w * w + 6 * w + (gate if config["cbam"] else 0)  # two 3x3 convolutions, the 1x1 shortcut, norms
    weights = 9 * config["in_channels"] * w + 2 * w + stages * stage + (w + 1) * config["n_classes"]
    pixels, kept = height * width, 3 * w * height * width  # the stem: convolution, norm, ReLU
    for _ in range(stages):
        pixels = -(-pixels // 4)
        kept += 12 * w * pixels
    return Size(weights, batch * (kept + config["in_channels"] * height * width))


def pool_over(x: torch.Tensor, kind: str, dims: tuple[int, ...]) -> torch.Tensor:
    """Pool ``x`` over ``dims`` (kept as size 1): average, maximum, L2 power (sqrt of the sum of squares)
    or log-sum-exp."""
    if kind == "avg":
        return x.mean(dim=dims, keepdim=True)
    if kind == "max":
        return x.amax(dim=dims, keepdim=True)
    if kind == "lp":
        return x.pow(2).sum(dim=dims, keepdim=True).clamp_min(1e-12).sqrt()
    return torch.logsumexp(x, dim=dims, keepdim=True)


def hidden_units(channels: int, ratio: int) -> int:
    """The width of the channel MLP: C / r, and at least one unit when the ratio exceeds the channels."""
    return max(1, channels // int(ratio))


class ChannelAttention(nn.Module):
    """Weigh each channel by a shared MLP (C -> C/r -> C, ReLU) over its globally pooled values."""

    def __init__(self, channels: int, ratio: int = 16, pool=("avg", "max"), merge: str = "sum"):
        super().__init__()
        channels, ratio = whole(channels, "number of channels", 1, MAX_WEIGHTS), whole(ratio, "reduction ratio", 1)
        self.pool, self.merge = check_pool(pool), choice(merge, "merge", MERGES)
        hidden = hidden_units(channels, ratio)
        check_size(f"A channel gate over {channels:,} channels", Size(2 * channels * len(self.pool) * hidden, 0))
        n_inputs = channels * len(self.pool) if merge == "concat" else channels
        self.mlp = nn.Sequential(nn.Linear(n_inputs, hidden), nn.ReLU(), nn.Linear(hidden, channels))
        self.hook_weights = HookPoint()  # [B, C]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)[:, :, None, None]

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """M_c(x) ``[B, C]``."""
        pooled = [pool_over(x, kind, (2, 3)).flatten(1) for kind in self.pool]  # each [B, C]
        if self.merge == "sum":
            logits = sum(self.mlp(p) for p in pooled)
        else:
            logits = self.mlp(torch.cat(pooled, dim=1))
        return self.hook_weights(torch.sigmoid(logits))


class SpatialAttention(nn.Module):
    """Weigh each position by a k x k convolution over the channel-pooled maps."""

    def __init__(self, kernel_size: int = 7, pool=("avg", "max")):
        super().__init__()
        kernel_size = check_options(16, kernel_size, "parallel", True, True, pool, "sum")["kernel_size"]
        self.pool = check_pool(pool)
        self.conv = nn.Conv2d(len(self.pool), 1, kernel_size, padding=kernel_size // 2)
        self.hook_map = HookPoint()  # [B, 1, H, W]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """M_s(x) ``[B, 1, H, W]``."""
        pooled = torch.cat([pool_over(x, kind, (1,)) for kind in self.pool], dim=1)  # [B, n_pool, H, W]
        return self.hook_map(torch.sigmoid(self.conv(pooled)))


class CBAM(nn.Module):
    """Channel then spatial attention (or spatial first, or both from the input in parallel).

    The gates' weights pass through hook points (``channel_gate.hook_weights`` ``[B, C]``, ``spatial_gate.hook_map``
    ``[B, 1, H, W]``) where ``capture`` reads them.
    """

    def __init__(self, in_channels: int, ratio: int = 16, kernel_size: int = 7, order: str = "channel-spatial",
                 channel: bool = True, spatial: bool = True, pool=("avg", "max"), merge: str = "sum"):
        super().__init__()
        options = check_options(ratio, kernel_size, order, channel, spatial, pool, merge)
        order, channel, spatial = options["order"], options["channel"], options["spatial"]
        if not (channel or spatial):
            raise ValueError("Switch on channel or spatial attention (or switch CBAM off).")
        self.order = order
        self.channel_gate = ChannelAttention(in_channels, ratio, pool, merge) if channel else None
        self.spatial_gate = SpatialAttention(kernel_size, pool) if spatial else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.order == "parallel":  # both gates read the input; their weights multiply it together
            out = x
            if self.channel_gate is not None:
                out = out * self.channel_gate.gate(x)[:, :, None, None]
            if self.spatial_gate is not None:
                out = out * self.spatial_gate.gate(x)
            return out
        gates = [g for g in (self.channel_gate, self.spatial_gate) if g is not None]
        if self.order == "spatial-channel":
            gates.reverse()
        for gate in gates:
            x = gate(x)
        return x


class ResidualStage(nn.Module):
    """A ResNet basic block that halves the resolution, with CBAM on the residual branch before the addition."""

    def __init__(self, in_channels: int, out_channels: int, cbam_options: dict | None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.cbam = CBAM(out_channels, **cbam_options) if cbam_options is not None else None
        self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=2, bias=False),
                                      nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.cbam is not None:
            out = self.cbam(out)
        return F.relu(out + self.shortcut(x))


class CBAMNet(nn.Module):
    """A small CNN: a 3x3 stem, ``stages`` residual stages (each halves H and W), global average pooling, a
    linear classifier. ``cbam=False`` is the plain baseline with the identical backbone."""

    def __init__(self, n_classes: int, in_channels: int = 1, width: int = 32, stages: int = 3, cbam: bool = True,
                 **cbam_options):
        super().__init__()
        unknown = sorted(set(cbam_options) - (set(PAPER) - {"cbam"}))
        if unknown:
            raise ValueError(f"CBAM has no setting called {shown(unknown[0])}: it has {', '.join(sorted(set(PAPER) - {'cbam'}))}.")
        n_classes, width = whole(n_classes, "number of classes", 2, MAX_WEIGHTS), whole(width, "width", 1, MAX_WEIGHTS)
        in_channels = whole(in_channels, "number of input channels", 1, MAX_WEIGHTS)
        stages, cbam = check_layers("A CBAMNet", whole(stages, "number of stages", 1), "stages"), flag(cbam, "CBAM switch")
        if cbam:
            checked = check_options(**{**{k: v for k, v in PAPER.items() if k != "cbam"}, **cbam_options})
            given = cbam_options  # a pool given as a list stays a list, so a saved config reads back equal
            cbam_options = {key: type(given[key])(checked[key]) if key == "pool" and isinstance(given[key], (list, tuple))
                            else checked[key] for key in given}
        self.config = dict(n_classes=n_classes, in_channels=in_channels, width=width, stages=stages, cbam=cbam,
                           **cbam_options)
        check_size(f"A CBAMNet of width {width:,} with {stages} stages", cbam_size(self.config), "for one 32 x 32 image")
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU())
        self.stages = nn.ModuleList(
            ResidualStage(width, width, dict(cbam_options) if cbam else None) for _ in range(stages))
        self.head = nn.Linear(width, n_classes)

    @property
    def cbams(self) -> list[CBAM]:
        return [stage.cbam for stage in self.stages if stage.cbam is not None]

    def features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The last stage's feature maps ``[B, width, H / 2**stages, W / 2**stages]``."""
        x = self.stem(pixel_values)
        for stage in self.stages:
            x = stage(x)
        return x

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(pixel_values).mean(dim=(2, 3)))  # logits [B, n_classes]


def check_images(model: CBAMNet, pixel_values: torch.Tensor) -> torch.Tensor:
    """Finite ``[B, C, H, W]`` images (one image may come as ``[C, H, W]``) of the model's channels, whose activations
    fit the machine's budget."""
    pixel_values = float_tensor(pixel_values, "images", dims=(3, 4))
    if pixel_values.dim() == 3:
        pixel_values = pixel_values[None]
    channels = model.config["in_channels"]
    if pixel_values.shape[1] != channels or 0 in pixel_values.shape:
        raise ValueError(f"This model reads images of {channels} channel(s) [B, {channels}, H, W], "
                         f"got shape {tuple(pixel_values.shape)}.")
    batch, _, height, width = pixel_values.shape
    check_size(f"The CBAMNet over {batch} image(s) of {height} x {width}", cbam_size(model.config, batch, height, width))
    return pixel_values


def upsample(maps: torch.Tensor, size) -> torch.Tensor:
    """``[B, 1, h, w]`` maps resized (bilinear) to ``size`` and returned as ``[B, H, W]``."""
    return F.interpolate(maps, size=tuple(size), mode="bilinear", align_corners=False)[:, 0]


@torch.no_grad()
def cbam_maps(model: CBAMNet, pixel_values: torch.Tensor) -> ImageAttention:
    """Run ``model`` (in eval mode) and collect each stage's channel weights and spatial map."""
    pixel_values = check_images(model, pixel_values)
    was_training = model.training
    model.eval()
    try:
        with capture(model, "stages.*.cbam.*") as captured:
            logits = model(pixel_values)
    finally:
        model.train(was_training)
    size = pixel_values.shape[-2:]
    channel = [captured.get(name) for name in captured.names("*.hook_weights")]
    spatial = [upsample(captured.get(name), size) for name in captured.names("*.hook_map")]
    return ImageAttention(channel=channel, spatial=spatial, images=pixel_values,
                          predictions=tuple(logits.argmax(dim=1).tolist()))


def target_classes(target, logits: torch.Tensor) -> torch.Tensor:
    """Grad-CAM's class index (or one per image) as a tensor; a ValueError names the classes there are."""
    n_classes = logits.shape[1]
    many = isinstance(target, (list, tuple)) or tuple(getattr(target, "shape", ())) != ()
    classes = [whole(value, "Grad-CAM target class", 0, n_classes - 1)
               for value in (items(target, "Grad-CAM target classes") if many else [target])]
    if len(classes) not in (1, len(logits)):
        raise ValueError(f"The Grad-CAM target is one class, or one per image ({len(logits)}), got {len(classes)}.")
    return torch.tensor(classes).expand(len(logits))


def grad_cam(model: CBAMNet, pixel_values: torch.Tensor, target=None) -> torch.Tensor:
    """Grad-CAM on the last stage, ``[B, H, W]`` at the input size, each map scaled to a maximum of 1.

    ``target`` is a class index (or one per image); by default the predicted class.
    """
    pixel_values = check_images(model, pixel_values)
    layer = model.stages[-1]
    kept = {}

    def keep(module, inputs, output):
        output.register_hook(lambda grad: kept.__setitem__("grad", grad))
        kept["features"] = output

    handle = layer.register_forward_hook(keep)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            logits = model(pixel_values)
            classes = logits.argmax(dim=1) if target is None else target_classes(target, logits)
            logits.gather(1, classes.view(-1, 1)).sum().backward()
    finally:
        handle.remove()
        model.train(was_training)
        model.zero_grad(set_to_none=True)
    weights = kept["grad"].mean(dim=(2, 3), keepdim=True)  # alpha_k: pooled gradients [B, C, 1, 1]
    cam = F.relu((weights * kept["features"]).sum(dim=1, keepdim=True)).detach()
    cam = upsample(cam, pixel_values.shape[-2:])
    return cam / cam.amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)


def localization(spatial_maps, boxes) -> float:
    """How much more of each map's mass falls inside the object's box than a uniform map would put there.

    ``spatial_maps`` ``[B, H, W]`` (non-negative), ``boxes`` ``[B, 4]`` as (x0, y0, x1, y1) pixels with exclusive
    ends. The mean over images of (map mass in the box / all mass) / (box area / image area); 1.0 = uniform.
    A map that is zero everywhere (Grad-CAM with no positive evidence) points nowhere and counts as 1.0.
    """
    maps = float_tensor(spatial_maps, "attention maps", dims=(3,)).double()
    boxes = float_tensor(boxes, "boxes", dims=(2,))
    if not torch.equal(boxes, boxes.round()):
        raise ValueError("The boxes hold whole pixel numbers (x0, y0, x1, y1); some of these have fractions.")
    boxes = boxes.clamp(-2**30, 2**30).long()
    if maps.dim() != 3 or boxes.shape != (maps.shape[0], 4):
        raise ValueError(f"Need maps [B, H, W] and boxes [B, 4], got {tuple(maps.shape)} and {tuple(boxes.shape)}.")
    if (maps < 0).any():
        raise ValueError("Attention maps must not be negative.")
    height, width = maps.shape[1:]
    scores = []
    for m, (x0, y0, x1, y1) in zip(maps, boxes.tolist()):
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"The box ({x0}, {y0}, {x1}, {y1}) holds no pixels of a {width} x {height} image.")
        total = m.sum()
        area = (x1 - x0) * (y1 - y0) / (height * width)
        scores.append(float(m[y0:y1, x0:x1].sum() / total / area) if total > 0 else 1.0)
    return sum(scores) / len(scores)


def probe_maps(model: CBAMNet, pixel_values: torch.Tensor, boxes=None) -> ImageAttention:
    """CBAM maps of a fixed set of images plus their Grad-CAM and, with boxes, the localization of each
    stage's spatial map and of Grad-CAM."""
    record = cbam_maps(model, pixel_values)
    cam = grad_cam(model, pixel_values)
    scores = {}
    if boxes is not None:
        scores = {f"stage {i + 1}": localization(s, boxes) for i, s in enumerate(record.spatial)}
        scores["Grad-CAM"] = localization(cam, boxes)
    return ImageAttention(channel=record.channel, spatial=record.spatial, images=record.images,
                          predictions=record.predictions, grad_cam=cam, localization=scores)
