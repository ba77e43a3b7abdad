"""The Vision tab: a small CNN with CBAM, the identical plain CNN and a small Vision Transformer trained side by
side on the same batches; where does each look?

Controls on the left, declared as rows bound to a ``VisionSession``; on the right, drawn from the session's
``lab_view``: the curves of the nets, a gallery of test images with each CBAM stage's spatial map, Grad-CAM, and
the ViT's CLS map, rollout and one head over them, the channel weights of the selected image, and the
localization of each map over training.
"""

from __future__ import annotations

import ipywidgets as widgets

from explorer import links
from explorer.data.images import MAX_UPLOAD_BYTES
from explorer.models.cbam import POOL_TYPES
from explorer.paths import classroom
from explorer.sessions.rules import head_options
from explorer.sessions.vision import GALLERY_SIZE, NAMES, VisionSession
from explorer.sessions.vision_nets import image_shape, patch_choices
from explorer.sessions.vision_vit import MAX_VIT_LAYERS, VIT_WIDTHS
from explorer.views import images as view
from explorer.views import words
from explorer.widgets.controls import (Form, Row, StatusLine, bind, button, columns, control, explain, explanation, guarded,
                                       preset_row, section, shows_errors, tagged)
from explorer.widgets.export import CopyLink, ExportBar
from explorer.widgets.plot import PlotView
from explorer.widgets.student_files import StudentFiles
from explorer.widgets.upload import SizedUpload
from explorer.widgets.vision_pretrained import PretrainedViTControls

DATASETS = (("shapes (with boxes)", "shapes"), ("digits (scikit-learn)", "digits"), ("your folder", "folder"))
VIT_ROWS = ("patch_size", "vit_heads", "vit_layers", "vit_width", "vit_pool", "vit_head")
w = widgets
ROWS = (
    preset_row(),
    Row("dataset", control(w.Dropdown, "190px"), "dataset", "ae-cbam-dataset", options=lambda s: DATASETS),
    Row("folder", control(w.Text, "300px", placeholder="folder with one sub-folder per class")),
    Row("cbam", control(w.Checkbox, description="CBAM on", indent=False), tag="ae-cbam-use-cbam"),
    Row("channel", control(w.Checkbox, description="channel attention", indent=False)),
    Row("spatial", control(w.Checkbox, description="spatial attention", indent=False)),
    Row("order", control(w.Dropdown, "170px"), "order"),
    Row("merge", control(w.ToggleButtons, style=dict(button_width="70px")), "merge"),
    Row("ratio", control(w.IntText, "80px"), "ratio r", "ae-cbam-ratio"),
    Row("kernel_size", control(w.ToggleButtons, style=dict(button_width="45px")), "kernel k", "ae-cbam-kernel"),
    Row("vit", control(w.Checkbox, description="ViT on", indent=False), tag="ae-vit-use"),
    Row("patch_size", control(w.ToggleButtons, style=dict(button_width="45px")), "patch", "ae-vit-patch",
        options=lambda s: patch_choices(image_shape(s.data)[1])),
    Row("vit_heads", control(w.Dropdown, "80px"), "heads", "ae-vit-heads", options=lambda s: head_options(s.vit_width)),
    Row("vit_layers", control(w.Dropdown, "80px", options=list(range(1, MAX_VIT_LAYERS + 1))), "layers", "ae-vit-layers"),
    Row("vit_width", control(w.Dropdown, "80px", options=VIT_WIDTHS), "width", "ae-vit-width"),
    Row("vit_pool", control(w.ToggleButtons, style=dict(button_width="60px")), "pooling", "ae-vit-pool",
        options=lambda s: [("CLS", "cls"), ("mean", "mean")]),
    Row("vit_head", control(w.Dropdown, "80px"), "gallery head", "ae-vit-head", options=lambda s: list(range(s.vit_heads))),
    Row("lr", control(w.FloatText, "90px", step=0.001), "learning rate", "ae-cbam-lr"),
    Row("epochs", control(w.IntText, "80px"), "epochs", "ae-cbam-epochs"),
    Row("path", control(w.Text, "160px")),
    Row("selected", control(w.ToggleButtons, options=[(f"image {i + 1}", i) for i in range(GALLERY_SIZE)],
                            style=dict(button_width="78px")), tag="ae-cbam-selected"),
)


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
        self.form = form = Form(session, ROWS)
        self.options = {name: form[name] for name in ("channel", "spatial", "order", "merge", "ratio", "kernel_size")}
        self.vit = {name: form[name] for name in ("vit", *VIT_ROWS)}
        self.preset, self.dataset, self.folder, self.use_cbam, self.lr, self.epochs, self.path, self.selected = (
            form[name] for name in ("preset", "dataset", "folder", "cbam", "lr", "epochs", "path", "selected"))
        self.pools = {p: w.Checkbox(description=p, indent=False, layout=w.Layout(width="70px")) for p in POOL_TYPES}
        self.bindings = [*form.bindings.values(), *(pool_binding(box, session, p) for p, box in self.pools.items())]
        session.observe(lambda _: form.bindings["vit_heads"].show(), "vit_width")  # the offered heads follow the width
        session.observe(lambda _: form.bindings["vit_head"].show(), "vit_heads")
        self.progress = tagged(w.IntProgress(value=0, min=0, max=1000, layout=w.Layout(width="300px")),
                               "ae-cbam-progress")
        self.upload = tagged(SizedUpload(accept="image/*", description="Your image", max_bytes=MAX_UPLOAD_BYTES),
                             "ae-cbam-upload")
        self.upload.observe(self._on_upload, "value")
        self.upload.observe(lambda change: change["new"] and session.say(change["new"], "error"), "refusal")
        self.pretrained = PretrainedViTControls(session)
        self.controls = self._controls()
        self._build_figures()
        self.children = [columns(self.controls, self.outputs)]
        session.observe(lambda _: self.redraw(), ["lab_view", "selected", "vit_head", "vit_patch"])
        session.observe(lambda _: self._show_yours(), "yours")
        session.observe(lambda _: self._show_deletion(), "map_test")
        session.observe(lambda change: setattr(self.progress, "value", int(1000 * change["new"])), "progress")
        self.redraw()

    # ----- layout ---------------------------------------------------------------------------------
    def _controls(self) -> widgets.VBox:
        s, form = self.session, self.form
        act = lambda name, action, style="", icon="", width="100px": button(  # noqa: E731
            name, guarded(s, action), f"ae-cbam-{name.lower().replace(' ', '-')}", style, icon, width)
        export = ExportBar(s, {"gallery": "ae-cbam-gallery", "curves": "ae-cbam-curves",
                               "localization": "ae-cbam-localization", "deletion": "ae-cbam-deletion"}, name="cbam")
        return w.VBox([
            section("Example", form["preset"]),
            section("Data", *form.rows("dataset", width="70px"), form["folder"],
                    act("Load data", s.load_data, icon="folder-open", width="130px")),
            section("CBAM", form["cbam"], w.HBox(form.rows("channel", "spatial")), *form.rows("order", width="70px"),
                    w.HBox(list(self.pools.values()), layout=w.Layout(flex_flow="row wrap")),
                    *form.rows("merge", "ratio", "kernel_size", width="70px")),
            section("Vision Transformer", form["vit"], *form.rows(*VIT_ROWS)),
            section("Training", *form.rows("lr", "epochs", width="100px"),
                    w.HBox([act("Train", s.train, "success", "play"), act("Stop", s.stop, icon="stop"),
                            act("Reset", s.reset, icon="undo")]), self.progress),
            section("Checkpoint", w.HBox([form["path"], act("Save", s.save, width="70px"), act("Load", s.load, width="70px")]),
                    *([StudentFiles(s, s.checkpoint_files, "cbam")] if classroom() else [])),
            section("Your own image", self.upload),
            section("Pretrained ViT", *self.pretrained.widgets),
            section("Export", export),
            section("Share", CopyLink(lambda: links.query(s.key, s.state()))),
            self.status,
        ], layout=w.Layout(width="26em", min_width="300px", flex="0 1 26em"))  # em: grows with the font

    def _build_figures(self) -> None:
        self.figures = {name: PlotView(name=f"ae-cbam-{name}")
                        for name in ("curves", "gallery", "channels", "localization", "deletion")}
        self.figures["gallery"].on_click(self._on_gallery_click)
        self.yours_figure = PlotView(name="ae-cbam-yours")
        self.yours = w.VBox()
        s = self.session
        self.deletion_figure = w.Box([self.figures["deletion"]], layout=w.Layout(display="none"))
        self.deletion_run = button("Deletion and insertion", guarded(s, s.measure_deletion), "ae-cbam-deletion-run",
                                   "info", "eraser", "190px")
        deletion = w.VBox([
            w.HTML("<b>Do the maps name the pixels the net uses?</b><div style='font-size:12px;max-width:500px'>"
                   "Black out each map's top pixels first and watch the predicted class's probability fall "
                   "(deletion), or start black and bring them back first (insertion), against a random order."
                   "</div>"),
            w.HBox([self.deletion_run, button("Stop", guarded(s, s.stop), "ae-cbam-deletion-stop", "warning", "stop", "80px")]),
            self.deletion_figure], layout=w.Layout(width="520px"))
        deletion.add_class("ae-cbam-deletion-box")
        pair = w.Box([self.figures["channels"], self.figures["localization"], deletion],
                     layout=w.Layout(display="flex", flex_flow="row wrap"))
        self.gallery_words = explanation("ae-cbam-gallery-words")
        self.outputs = w.VBox([
            self.figures["curves"],
            w.HTML("<b>Test images</b>: click a patch of a ViT map to see what that patch attends to."),
            self.figures["gallery"], self.gallery_words,
            w.HBox([w.Label("channel weights of"), self.selected], layout=w.Layout(flex_flow="row wrap")),
            pair, self.yours, self.pretrained.outputs,
        ], layout=w.Layout(flex="1 1 600px", min_width="0"))

    # ----- drawing --------------------------------------------------------------------------------
    def redraw(self) -> None:
        """Every figure from the session's newest record."""
        s, record = self.session, self.session.lab_view
        if record is None:
            return
        maps = {NAMES[run.name]: run.snapshot.maps for run in record.runs}
        pixels, labels = s.gallery()
        selected = min(s.selected, len(pixels) - 1)
        channel = [weights[selected] for weights in maps[NAMES["cbam"]].channel]
        title = f"channel weights, image {selected + 1}" if channel else "no channel attention in this net"
        self.figures["curves"].show(view.curves_figure({NAMES[run.name]: run.history for run in record.runs},
                                                       {NAMES[run.name]: run.evaluations for run in record.runs}))
        self.figures["gallery"].show(view.attention_gallery(pixels, maps, s.class_names, labels, patch=s.patch_view(),
                                                            **self._vit_view()))
        stages = [score for name, score in maps[NAMES["cbam"]].localization.items() if name.startswith("stage")]
        explain(self.gallery_words, words.cbam_gallery(sum(stages) / len(stages) if stages else None))
        self.figures["channels"].show(view.channel_bars(channel, title, width=560))
        lines = view.localization_lines({NAMES[run.name]: run.snapshots for run in record.runs})
        self.figures["localization"].show(view.localization_figure(lines, width=520))

    def _show_deletion(self) -> None:
        """The deletion and insertion test of the nets on screen, hidden until one is measured."""
        test = self.session.map_test
        if test is not None:
            self.figures["deletion"].show(view.deletion_figure(test, width=520))
        self.deletion_figure.layout.display = None if test is not None else "none"

    def _vit_view(self) -> dict:
        """The gallery's ViT options: the picked head, and what its per-layer map shows."""
        vit = self.session.lab_view.run("vit")
        mean = vit is not None and vit.config.pool == "mean"
        return dict(head=self.session.vit_head, map_title="mean-token map" if mean else "CLS map")

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
        """The uploaded image through the nets, in one figure updated in place."""
        yours = self.session.yours
        self.yours_figure.show(view.attention_gallery(yours.pixels, yours.records, self.session.class_names,
                                                      height_per_row=170, **self._vit_view()))
        if not self.yours.children:
            self.yours.children = [w.HTML("<b>Your image</b>"), self.yours_figure]

    def wait(self, timeout: float = 120.0) -> None:
        self.session.wait(timeout)
