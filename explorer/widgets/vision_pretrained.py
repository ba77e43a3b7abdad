"""The Vision tab's pretrained ViT section: a local model folder, an image, a layer and a head, and the CLS maps of
every layer and head with the picked one's map and the rollout over the image. Bound to ``VisionSession``."""

from __future__ import annotations

import ipywidgets as widgets

from explorer.sessions.vision import GALLERY_SIZE
from explorer.sessions.vision_pretrained import YOUR_IMAGE
from explorer.views import images as view
from explorer.widgets.controls import bind, button, guarded, labelled, tagged
from explorer.widgets.plot import PlotView

IMAGES = [(f"image {i + 1}", i) for i in range(GALLERY_SIZE)] + [("your image", YOUR_IMAGE)]


class PretrainedViTControls:
    """The section's controls (``widgets``, for the tab's left column) and figures (``outputs``, for its right)."""

    def __init__(self, session):
        s, w = session, widgets
        self.session = session
        self.folder = tagged(w.Text(placeholder="folder of a ViT, DeiT, BEiT or DINO model",
                                    layout=w.Layout(width="300px")), "ae-vision-pretrained-folder")
        self.image = tagged(w.Dropdown(options=IMAGES, layout=w.Layout(width="120px")), "ae-vision-pretrained-image")
        self.layer = tagged(w.Dropdown(layout=w.Layout(width="80px")), "ae-vision-pretrained-layer")
        self.head = tagged(w.Dropdown(layout=w.Layout(width="80px")), "ae-vision-pretrained-head")
        count = lambda name: list(range(getattr(s.pretrained_view.maps, name) if s.pretrained_view else 1))  # noqa: E731
        self.bindings = [bind(self.folder, s, "vit_folder"), bind(self.image, s, "pretrained_image"),
                         bind(self.layer, s, "pretrained_layer", options=lambda: count("n_layers")),
                         bind(self.head, s, "pretrained_head", options=lambda: count("n_heads"))]
        self.widgets = [self.folder,
                        button("Load ViT", guarded(s, s.load_pretrained), "ae-vision-pretrained-load", icon="folder-open",
                               width="120px"),
                        labelled("image", self.image, "60px"),
                        widgets.HBox([labelled("layer", self.layer, "50px"), labelled("head", self.head, "50px")])]
        self.figures = {name: PlotView(name=f"ae-vision-pretrained-{name}") for name in ("maps", "heads")}
        self.figures["heads"].on_click(guarded(s, self.open_head))
        self.outputs = widgets.VBox()
        session.observe(lambda _: self.redraw(), ["pretrained_view", "pretrained_layer", "pretrained_head"])
        self.redraw()

    def redraw(self) -> None:
        s, shown = self.session, self.session.pretrained_view
        if shown is None:
            return
        for binding in self.bindings[2:]:
            binding.show()  # the offered layers and heads are the loaded model's
        layer, head = min(s.pretrained_layer, shown.maps.n_layers - 1), min(s.pretrained_head, shown.maps.n_heads - 1)
        self.figures["maps"].show(view.pretrained_vit_figure(shown.record, layer, head, f"{shown.name}: {shown.image}"))
        self.figures["heads"].show(view.head_grid_figure(shown.record))
        if not self.outputs.children:
            self.outputs.children = [
                widgets.HTML("<b>Pretrained ViT</b>: where the CLS token looks among the patches, in the picked layer "
                             "and head, over all heads, and through the rollout"), self.figures["maps"],
                widgets.HTML("<b>Every layer and head</b>: the CLS token's attention over the patches (click a "
                             "head to open it large above)"),
                self.figures["heads"]]

    def open_head(self, trace: int, point: dict) -> None:
        """A click on the grid: that layer's head opens in the large figure (each row is a layer: the image, then a
        grey copy and the map of each head, named "head h")."""
        shown = self.session.pretrained_view
        name = self.figures["heads"].figure.data[trace].name or ""
        if shown is None or not name.startswith("head "):
            return
        layer = trace // (1 + 2 * shown.maps.n_heads)
        self.session.update(pretrained_layer=layer, pretrained_head=int(name.split()[1]))
