"""The "Train a Transformer" tab: build a tiny Transformer, train it live and watch its attention learn.

Controls on the left, declared as rows bound to a ``TransformerLabSession``; on the right the ``TrainingMonitor``
draws the session's ``lab_view``: the step counter, the loss and accuracy curves, the prediction for a fixed
probe input and every head on that input.
"""

from __future__ import annotations

import ipywidgets as widgets

from explorer import links
from explorer.data.sequences import MAX_TEXT_BYTES, task_names
from explorer.paths import classroom
from explorer.sessions.rules import head_options
from explorer.sessions.transformer_lab import ARCHITECTURE, PRESETS, TEXT_PREFIX, TransformerLabSession  # noqa: F401
from explorer.views.timeline import timeline_gif, timeline_html
from explorer.widgets.controls import Form, Row, StatusLine, button, columns, control, preset_row, section, shows_errors, tagged
from explorer.widgets.export import CopyLink, ExportBar, maps_export
from explorer.widgets.faithfulness import FaithfulnessSection
from explorer.widgets.student_files import StudentFiles
from explorer.widgets.training_monitor import TrainingMonitor
from explorer.widgets.translator import TranslatorBox
from explorer.widgets.upload import SizedUpload

POOLING_CHOICES = [("[CLS] token", "cls"), ("mean", "mean"), ("max", "max"), ("attention", "attention")]
PER_TOKEN = [("none (per token)", "none")]
NARROW = "170px"
w = widgets
ROWS = (
    preset_row(),
    Row("task", control(w.Dropdown, NARROW), "task", options=lambda s: [*task_names(), *s.text_tasks]),
    Row("length", control(w.IntSlider, NARROW, min=4, max=24), "length"),
    Row("vocab", control(w.IntSlider, NARROW, min=3, max=128), "vocabulary"),
    Row("kind", control(w.Dropdown, NARROW), "model"),
    Row("layers", control(w.IntSlider, NARROW, min=1, max=4), "layers"),
    Row("width", control(w.Dropdown, NARROW), "width"),
    Row("heads", control(w.Dropdown, NARROW), "heads", options=lambda s: head_options(s.width)),
    Row("pooling", control(w.Dropdown, NARROW), "pooling",
        options=lambda s: POOLING_CHOICES if s.pooling != "none" else PER_TOKEN),
    Row("norm", control(w.ToggleButtons, style=dict(button_width="62px")), "LayerNorm"),
    Row("positional", control(w.ToggleButtons, style=dict(button_width="80px")), "positions"),
    Row("score", control(w.Dropdown, NARROW), "cross score", "ae-tl-score"),
    Row("attention_only", control(w.Checkbox, "auto", description="attention only (no feed-forward)", indent=False),
        tag="ae-tl-attention-only"),
    Row("compare", control(w.Checkbox, "auto", description="train a second model", indent=False)),
    Row("heads_b", control(w.Dropdown, NARROW), "its heads", options=lambda s: head_options(s.width)),
    Row("layers_b", control(w.IntSlider, NARROW, min=1, max=4), "its layers", "ae-tl-layers-b"),
    Row("score_b", control(w.Dropdown, NARROW), "its cross score"),
    Row("lr", control(w.FloatText, NARROW, step=1e-4), "learning rate", "ae-tl-lr"),
    Row("batch_size", control(w.Dropdown, NARROW, options=[16, 32, 64, 128, 256]), "batch size"),
    Row("steps", control(w.IntText, NARROW), "steps", "ae-tl-steps"),
    Row("path", control(w.Text, "250px")),
    Row("faith_position", control(w.IntText, "80px"), "position", "ae-tl-faith-position"),
)
BUTTONS = (("Train", "success"), ("Stop", "danger"), ("Reset", ""), ("Save", ""), ("Load", ""))


class TransformerLabPanel(widgets.VBox):
    """Pick a task and an architecture, press Train, and watch loss fall and the attention find the pattern."""

    def __init__(self, session: TransformerLabSession | None = None):
        super().__init__()
        self.add_class("ae-transformer-lab")
        self.session = session = session or TransformerLabSession()
        self.status = StatusLine(session)
        self.monitor = TrainingMonitor()
        self.translator = TranslatorBox(session)
        self.monitor.layout.flex = "0 0 auto"  # in the column under the translator, its own height
        self.form = form = Form(session, ROWS)
        self.arch = {name: form[name] for name in ARCHITECTURE}
        self.preset, self.lr, self.batch_size, self.steps, self.path = (
            form[name] for name in ("preset", "lr", "batch_size", "steps", "path"))
        self.bindings = list(form.bindings.values())
        self.upload = tagged(SizedUpload(accept=".txt,.csv,.jsonl,.tsv", description="your file",
                                         max_bytes=MAX_TEXT_BYTES), "ae-tl-upload")
        self.upload.observe(self._on_upload, "value")
        self.upload.observe(lambda change: change["new"] and session.say(change["new"], "error"), "refusal")
        # In a class the files are on the server, in the student's folder: buttons bring them out and back.
        self.your_files = [StudentFiles(session, session.checkpoint_files, "tl")] if classroom() else []
        self.buttons = {name: button(name, getattr(self, name.lower()), f"ae-tl-{name.lower()}", style, width="76px")
                        for name, style in BUTTONS}
        self.export_bar = ExportBar(session, {"curves": "ae-tl-curves", "heads": "ae-tl-heads-0"},
                                    {"timeline": (("gif", "html"), self.timeline_file),
                                     "attention maps": maps_export(session.probe_maps)}, name="transformer")
        self.controls = self._layout()
        self.faithfulness = FaithfulnessSection(session.faithful, lambda: "attention", "tl", "the first model's map",
                                                form.rows("faith_position", width="60px"))
        self.children = [columns(self.controls, widgets.VBox([self.translator, self.monitor, self.faithfulness],
                                                             layout=widgets.Layout(flex="1 1 560px", min_width="0")))]
        session.observe(lambda change: self._on_view(change["new"]), "lab_view")
        self._on_view(session.lab_view)

    def _layout(self) -> widgets.VBox:
        form, b = self.form, self.buttons
        return widgets.VBox([
            section("Example", form["preset"]),
            section("Task", *form.rows("task", "length", "vocab"), self.upload),
            section("Model", *form.rows("kind", "layers", "width", "heads", "pooling", "norm", "positional", "score",
                                        "attention_only")),
            section("Compare", *form.rows("compare", "heads_b", "layers_b", "score_b")),
            section("Training", *form.rows("lr", "batch_size", "steps"), widgets.HBox([b["Train"], b["Stop"], b["Reset"]])),
            section("Translate (dates, numbers, your pairs)", self.translator.controls),
            section("Checkpoint folder", form["path"], widgets.HBox([b["Save"], b["Load"]]), *self.your_files),
            section("Export", self.export_bar),
            section("Share", CopyLink(lambda: links.query(self.session.key, self.session.state()))),
            self.status,
        ], layout=widgets.Layout(width="26em", min_width="300px", flex="0 1 26em"))  # em: grows with the font

    def _on_view(self, record) -> None:
        """A record of new models (another task or architecture, a load) first refreshes the controls' options."""
        if record is None:
            return
        if self.monitor.record is None or self.monitor.record.lab != record.lab:
            self.form.show()  # options that follow the task (pooling, heads) and a loaded model's settings
            text = self.session.task.startswith(TEXT_PREFIX) or self.session.translates(self.session.task)
            self.arch["length"].disabled = self.arch["vocab"].disabled = text
            self.arch["score"].disabled = self.arch["score_b"].disabled = self.session.kind != "encoder-decoder"
        self.monitor.draw(record)

    @property
    def runs(self) -> list:
        """The session's runs (for notebooks and tests; the panel draws ``lab_view``)."""
        return self.session.runs

    # ----- actions -----------------------------------------------------------------------------------------------
    @shows_errors
    def train(self) -> None:
        self.session.train()

    @shows_errors
    def stop(self) -> None:
        self.session.stop()

    @shows_errors
    def reset(self) -> None:
        self.session.reset()

    @shows_errors
    def save(self) -> None:
        self.session.save()

    @shows_errors
    def load(self) -> None:
        self.session.load()

    def apply_preset(self, name: str) -> None:
        self.session.apply_preset(name)

    def wait(self, timeout: float = 120.0) -> None:
        """Block until building and training are done and drawn (for notebooks and tests)."""
        self.session.wait(timeout)

    @shows_errors
    def _on_upload(self, change) -> None:
        if not change["new"]:
            return
        item = change["new"][0]
        self.upload.value = ()  # the file's bytes are not kept in the page or the kernel
        self.session.add_text(item["name"], bytes(item["content"]))

    def timeline_file(self, fmt: str) -> bytes:
        """The first model's last layer over its training snapshots, as an animated GIF or an HTML page."""
        record = self.session.record()
        snapshots = record.runs[0].snapshots if record is not None else ()
        if len(snapshots) < 2:
            raise ValueError("There is no timeline yet: train for a few steps first.")
        layer = snapshots[-1].maps.n_layers - 1
        return timeline_gif(snapshots, layer) if fmt == "gif" else timeline_html(snapshots, layer)
