"""The Vision tab: a small CNN with CBAM, the identical plain CNN and a small Vision Transformer trained side by
side on the same batches; where does each look?

Controls on the left, bound to a ``VisionSession``; on the right the curves of the nets, a gallery of test
images with each CBAM stage's spatial map, Grad-CAM, and the ViT's CLS map, rollout and one head over them, the
channel weights of the selected image, and the localization of each map over training.
"""

from __future__ import annotations

import ipywidgets as widgets

from explorer import links
from explorer.data.images import MAX_UPLOAD_BYTES
from explorer.models.cbam import KERNEL_SIZES, MERGES, ORDERS, POOL_TYPES, PRESETS, localization_history
from explorer.paths import classroom
from explorer.sessions.vision import GALLERY_SIZE, NAMES, VisionSession
from explorer.sessions.vision_nets import image_shape, patch_choices
from explorer.sessions.vision_vit import MAX_VIT_LAYERS, VIT_WIDTHS, vit_head_options
from explorer.views import images as view
from explorer.widgets.controls import StatusLine, bind, button, columns, guarded, labelled, section, shows_errors, tagged
from explorer.widgets.export import CopyLink, ExportBar
from explorer.widgets.plot import PlotView
from explorer.widgets.student_files import StudentFiles
from explorer.widgets.upload import SizedUpload
from explorer.widgets.vision_pretrained import PretrainedViTControls

DATASETS = (("shapes (with boxes)", "shapes"), ("digits (scikit-learn)", "digits"), ("your folder", "folder"))
CHOOSE = "(choose an example)"


def pool_binding(control, session, pool: str):
    """A checkbox for one pooling type: ticked when the type is in the session's pools."""
    def toggled(ticked: bool) -> list:
        return [p for p in POOL_TYPES if (p == pool and ticked) or (p != pool and p in session.pools)]
    return bind(control, session, "pools", to_view=lambda pools: pool in pools, to_setting=toggled)


class VisionPanel(widgets.VBox):
    """The live CBAM lab; ``session.train(steps)`` and ``session.apply_preset(name)`` drive it from code too."""

    def __init__(self, session: VisionSession | None = None):
        super().__init__()
        self.add_class("ae-cbam")  # the tab's old name: links and page tests find its controls by it
        self.add_class("ae-vision")
        self.session = session = session or VisionSession()
        self.status = StatusLine(session)
        self._build_controls()
        self._build_figures()
        self.children = [columns(self.controls, self.outputs)]
        session.observe(lambda _: self.redraw(), ["trainers", "revision"])
        session.observe(lambda _: self._show_yours(), "yours")
        session.observe(lambda change: setattr(self.progress, "value", int(1000 * change["new"])), "progress")
        self.redraw()

    # ----- layout ---------------------------------------------------------------------------------
    def _build_controls(self) -> None:  # long: one control per setting, made and bound in the order they appear
        s, w = self.session, widgets
        self.preset = w.Dropdown(options=[CHOOSE, *PRESETS], layout=w.Layout(width="250px"))
        self.dataset = tagged(w.Dropdown(options=DATASETS, layout=w.Layout(width="190px")), "ae-cbam-dataset")
        self.folder = w.Text(placeholder="folder with one sub-folder per class", layout=w.Layout(width="300px"))
        self.use_cbam = tagged(w.Checkbox(description="CBAM on", indent=False), "ae-cbam-use-cbam")
        self.options = {
            "channel": w.Checkbox(description="channel attention", indent=False),
            "spatial": w.Checkbox(description="spatial attention", indent=False),
            "order": w.Dropdown(options=ORDERS, layout=w.Layout(width="170px")),
            "merge": w.ToggleButtons(options=MERGES, style=dict(button_width="70px")),
            "ratio": tagged(w.IntText(layout=w.Layout(width="80px")), "ae-cbam-ratio"),
            "kernel_size": tagged(w.ToggleButtons(options=KERNEL_SIZES, style=dict(button_width="45px")), "ae-cbam-kernel"),
        }
        self.pools = {p: w.Checkbox(description=p, indent=False, layout=w.Layout(width="70px")) for p in POOL_TYPES}
        self.lr = tagged(w.FloatText(step=0.001, layout=w.Layout(width="90px")), "ae-cbam-lr")
        self.epochs = tagged(w.IntText(layout=w.Layout(width="80px")), "ae-cbam-epochs")
        self.progress = tagged(w.IntProgress(value=0, min=0, max=1000, layout=w.Layout(width="300px")), "ae-cbam-progress")
        self.path = w.Text(layout=w.Layout(width="160px"))
        self.upload = tagged(SizedUpload(accept="image/*", description="Your image", max_bytes=MAX_UPLOAD_BYTES),
                             "ae-cbam-upload")
        self.selected = tagged(w.ToggleButtons(options=[(f"image {i + 1}", i) for i in range(GALLERY_SIZE)],
                                               style=dict(button_width="78px")), "ae-cbam-selected")
        self.bindings = [bind(self.dataset, s, "dataset"), bind(self.folder, s, "folder"), bind(self.use_cbam, s, "cbam"),
                         bind(self.lr, s, "lr"), bind(self.epochs, s, "epochs"), bind(self.path, s, "path"),
                         bind(self.selected, s, "selected"),
                         bind(self.preset, s, "preset", to_view=lambda v: v or CHOOSE,
                              to_setting=lambda v: "" if v == CHOOSE else v)]
        self.bindings += [bind(control, s, name) for name, control in self.options.items()]
        self.bindings += [pool_binding(control, s, pool) for pool, control in self.pools.items()]
        self.upload.observe(self._on_upload, "value")
        self.upload.observe(lambda change: change["new"] and s.say(change["new"], "error"), "refusal")
        self._build_vit_controls()
        self.pretrained = PretrainedViTControls(s)
        option = {key: labelled(key.replace("_size", " k").replace("ratio", "ratio r"), control, "70px")
                  for key, control in self.options.items()}
        export = ExportBar(s, {"gallery": "ae-cbam-gallery", "curves": "ae-cbam-curves",
                               "localization": "ae-cbam-localization"}, name="cbam")
        self.controls = w.VBox([
            section("Example", self.preset),
            section("Data", labelled("dataset", self.dataset, "70px"), self.folder,
                    button("Load data", guarded(s, s.load_data), "ae-cbam-load-data", icon="folder-open", width="130px")),
            section("CBAM", self.use_cbam, w.HBox([self.options["channel"], self.options["spatial"]]), option["order"],
                    w.HBox(list(self.pools.values()), layout=w.Layout(flex_flow="row wrap")), option["merge"],
                    option["ratio"], option["kernel_size"]),
            section("Vision Transformer", *self.vit_controls),
            section("Training", labelled("learning rate", self.lr, "100px"), labelled("epochs", self.epochs, "100px"),
                    w.HBox([button("Train", guarded(s, s.train), "ae-cbam-train", "success", "play", "100px"),
                            button("Stop", guarded(s, s.stop), "ae-cbam-stop", icon="stop", width="100px"),
                            button("Reset", guarded(s, s.reset), "ae-cbam-reset", icon="undo", width="100px")]),
                    self.progress),
            section("Checkpoint", w.HBox([self.path, button("Save", guarded(s, s.save), "ae-cbam-save", width="70px"),
                                          button("Load", guarded(s, s.load), "ae-cbam-load", width="70px")]),
                    *([StudentFiles(s, s.checkpoint_files, "cbam")] if classroom() else [])),
            section("Your own image", self.upload),
            section("Pretrained ViT", *self.pretrained.widgets),
            section("Export", export),
            section("Share", CopyLink(lambda: links.query(s.key, s.state()))),
            self.status,
        ], layout=w.Layout(width="340px", min_width="300px", flex="0 1 340px"))

    def _build_vit_controls(self) -> None:
        s, w = self.session, widgets
        narrow = w.Layout(width="80px")
        self.vit = {
            "vit": tagged(w.Checkbox(description="ViT on", indent=False), "ae-vit-use"),
            "patch_size": tagged(w.ToggleButtons(style=dict(button_width="45px")), "ae-vit-patch"),
            "vit_heads": tagged(w.Dropdown(layout=narrow), "ae-vit-heads"),
            "vit_layers": tagged(w.Dropdown(options=list(range(1, MAX_VIT_LAYERS + 1)), layout=narrow), "ae-vit-layers"),
            "vit_width": tagged(w.Dropdown(options=VIT_WIDTHS, layout=narrow), "ae-vit-width"),
            "vit_pool": tagged(w.ToggleButtons(options=[("CLS", "cls"), ("mean", "mean")],
                                               style=dict(button_width="60px")), "ae-vit-pool"),
            "vit_head": tagged(w.Dropdown(layout=narrow), "ae-vit-head"),
        }
        choices = {"patch_size": lambda: patch_choices(image_shape(s.data)[1]),
                   "vit_heads": lambda: vit_head_options(s.vit_width), "vit_head": lambda: list(range(s.vit_heads))}
        vit_bindings = {name: bind(control, s, name, options=choices.get(name)) for name, control in self.vit.items()}
        self.bindings += list(vit_bindings.values())
        s.observe(lambda _: vit_bindings["vit_heads"].show(), "vit_width")  # the offered heads follow the width
        s.observe(lambda _: vit_bindings["vit_head"].show(), "vit_heads")
        labels = {"patch_size": "patch", "vit_heads": "heads", "vit_layers": "layers", "vit_width": "width",
                  "vit_pool": "pooling", "vit_head": "gallery head"}
        self.vit_controls = [self.vit["vit"], *(labelled(text, self.vit[name], "90px") for name, text in labels.items())]

    def _build_figures(self) -> None:
        self.figures = {name: PlotView(name=f"ae-cbam-{name}") for name in ("curves", "gallery", "channels", "localization")}
        self.figures["gallery"].on_click(self._on_gallery_click)
        self.yours = widgets.VBox()
        pair = widgets.Box([self.figures["channels"], self.figures["localization"]],
                           layout=widgets.Layout(display="flex", flex_flow="row wrap"))
        self.outputs = widgets.VBox([
            self.figures["curves"],
            widgets.HTML("<b>Test images</b>: each CBAM stage's spatial map, Grad-CAM, and the ViT's last-layer "
                         "CLS map, rollout and one head over the image (titles: true class, then each net's answer). "
                         "Click a patch of a ViT map to see what that patch attends to."),
            self.figures["gallery"],
            widgets.HBox([widgets.Label("channel weights of"), self.selected], layout=widgets.Layout(flex_flow="row wrap")),
            pair, self.yours, self.pretrained.outputs,
        ], layout=widgets.Layout(flex="1 1 600px", min_width="0"))

    # ----- drawing --------------------------------------------------------------------------------
    def redraw(self) -> None:
        """Every figure from the latest snapshots."""
        s = self.session
        records = {NAMES[name]: trainer.snapshots[-1].maps for name, trainer in s.trainers.items()}
        cbam = records[NAMES["cbam"]]
        pixels, labels = s.gallery()
        selected = min(s.selected, len(pixels) - 1)
        channel = [weights[selected] for weights in cbam.channel]
        title = f"channel weights, image {selected + 1}" if channel else "no channel attention in this net"
        histories = {NAMES[n]: t.history for n, t in s.trainers.items()}
        evaluations = {NAMES[n]: e for n, e in s.group.evaluations.items()}
        self.figures["curves"].show(view.curves_figure(histories, evaluations))
        self.figures["gallery"].show(view.attention_gallery(pixels, records, s.class_names, labels, patch=s.patch_view(),
                                                            **self._vit_view()))
        self.figures["channels"].show(view.channel_bars(channel, title, width=560))
        self.figures["localization"].show(view.localization_figure(self._localization_lines(), width=520))

    def _vit_view(self) -> dict:
        """The gallery's ViT options: the picked head, and what its per-layer map shows."""
        vit = self.session.trainers.get("vit")
        mean = vit is not None and vit.model.config.pool == "mean"
        return dict(head=self.session.vit_head, map_title="mean-token map" if mean else "CLS map")

    def _localization_lines(self) -> dict:
        """Each CBAM stage's localization over training, Grad-CAM's for both CNNs, and the ViT's maps."""
        trainers = self.session.trainers
        cbam, plain = (localization_history(trainers[name].snapshots) for name in ("cbam", "plain"))
        lines = {key: line for key, line in cbam.items() if key != "Grad-CAM"}
        for name, history in (("cbam", cbam), ("plain", plain)):
            if "Grad-CAM" in history:
                lines[f"Grad-CAM ({NAMES[name]})"] = history["Grad-CAM"]
        if "vit" in trainers:
            lines.update({f"ViT {key}": line for key, line in localization_history(trainers["vit"].snapshots).items()})
        return lines

    @shows_errors
    def _on_gallery_click(self, trace: int, point: dict) -> None:
        """A click on a ViT map picks the patch under it (the session draws what the patch attends to)."""
        figure = self.figures["gallery"].figure
        if trace < len(figure.data) and (figure.data[trace].name or "").endswith("(ViT)"):
            self.session.pick_patch(point["x"], point["y"])

    @shows_errors
    def _on_upload(self, change) -> None:
        if not change["new"]:
            return
        upload = change["new"][0]
        self.upload.value = ()  # the widget does not keep the file (nor send it back to the page)
        self.session.show_image(bytes(upload["content"]))
        self.session.say(f"Maps of {upload['name']} drawn below the gallery.", "ok")

    def _show_yours(self) -> None:
        pixels, records = self.session.yours
        figure = PlotView(view.attention_gallery(pixels, records, self.session.class_names, height_per_row=170,
                                                 **self._vit_view()),
                          name="ae-cbam-yours")
        old = self.yours.children
        self.yours.children = [widgets.HTML("<b>Your image</b>"), figure]
        for widget in old:
            widget.close()

    def wait(self, timeout: float = 120.0) -> None:
        self.session.wait(timeout)
