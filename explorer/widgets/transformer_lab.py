"""The "Train a Transformer" tab: build a tiny Transformer, train it live and watch its attention learn.

Controls on the left, bound to a ``TransformerLabSession``; on the right the ``TrainingMonitor``: the step
counter, the loss and accuracy curves, the prediction for a fixed probe input and every head on that input.
"""

from __future__ import annotations

import ipywidgets as widgets

from explorer import links
from explorer.attention import SCORES
from explorer.data.sequences import MAX_TEXT_BYTES, TASKS, TRANSLATIONS
from explorer.paths import classroom
from explorer.sessions.transformer_lab import KINDS, PRESETS, TEXT_PREFIX, WIDTHS, TransformerLabSession, head_options
from explorer.views.timeline import timeline_gif, timeline_html
from explorer.widgets.controls import StatusLine, bind, button, columns, labelled, section, shows_errors, tagged
from explorer.widgets.export import CopyLink, ExportBar, maps_export
from explorer.widgets.training_monitor import TrainingMonitor
from explorer.widgets.student_files import StudentFiles
from explorer.widgets.translator import TranslatorBox
from explorer.widgets.upload import SizedUpload

POOLING_CHOICES = [("[CLS] token", "cls"), ("mean", "mean"), ("max", "max"), ("attention", "attention")]
PER_TOKEN = [("none (per token)", "none")]
CHOOSE = "(choose an example)"


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
        self._build_controls()
        self.children = [columns(self.controls, widgets.VBox([self.translator, self.monitor],
                                                             layout=widgets.Layout(flex="1 1 560px", min_width="0")))]
        session.observe(lambda _: self._on_runs(), "runs")
        session.observe(lambda _: self.monitor.redraw(), "revision")
        self._on_runs()

    def _build_controls(self) -> None:  # long: one control per setting, made and bound in the order they appear
        s, w, narrow = self.session, widgets, widgets.Layout(width="170px")
        self.preset = w.Dropdown(options=[CHOOSE, *PRESETS], layout=w.Layout(width="250px"))
        self.arch = {
            "task": w.Dropdown(layout=narrow), "length": w.IntSlider(min=4, max=24, layout=narrow),
            "vocab": w.IntSlider(min=3, max=30, layout=narrow), "kind": w.Dropdown(options=KINDS, layout=narrow),
            "layers": w.IntSlider(min=1, max=4, layout=narrow), "width": w.Dropdown(options=WIDTHS, layout=narrow),
            "heads": w.Dropdown(layout=narrow), "pooling": w.Dropdown(layout=narrow),
            "norm": w.ToggleButtons(options=[("pre", "pre"), ("post", "post")], style=dict(button_width="62px")),
            "positional": w.ToggleButtons(options=["sinusoidal", "learned"], style=dict(button_width="80px")),
            "score": tagged(w.Dropdown(options=SCORES, layout=narrow), "ae-tl-score"),
            "compare": w.Checkbox(description="train a second model", indent=False),
            "heads_b": w.Dropdown(layout=narrow),
            "score_b": w.Dropdown(options=SCORES, layout=narrow),
        }
        self.lr = tagged(w.FloatText(step=1e-4, layout=narrow), "ae-tl-lr")
        self.batch_size = w.Dropdown(options=[16, 32, 64, 128, 256], layout=narrow)
        self.steps = tagged(w.IntText(layout=narrow), "ae-tl-steps")
        self.path = w.Text(layout=w.Layout(width="250px"))
        self.upload = tagged(SizedUpload(accept=".txt,.csv,.jsonl,.tsv", description="your file",
                                         max_bytes=MAX_TEXT_BYTES), "ae-tl-upload")
        choices = {"task": lambda: [*TASKS, *TRANSLATIONS, *s.text_tasks], "heads": lambda: head_options(s.width),
                   "heads_b": lambda: head_options(s.width),
                   "pooling": lambda: POOLING_CHOICES if s.pooling != "none" else PER_TOKEN}
        self.bindings = [bind(control, s, name, options=choices.get(name)) for name, control in self.arch.items()]
        self.bindings += [bind(self.lr, s, "lr"), bind(self.batch_size, s, "batch_size"), bind(self.steps, s, "steps"),
                          bind(self.path, s, "path"),
                          bind(self.preset, s, "preset", to_view=lambda v: v or CHOOSE,
                               to_setting=lambda v: "" if v == CHOOSE else v)]
        # In a class the files are on the server, in the student's folder: buttons bring them out and back.
        self.your_files = [StudentFiles(s, s.checkpoint_files, "tl")] if classroom() else []
        self.upload.observe(self._on_upload, "value")
        self.upload.observe(lambda change: change["new"] and s.say(change["new"], "error"), "refusal")
        self.buttons = {name: button(name, action, f"ae-tl-{name.lower()}", style, width="76px")
                        for name, action, style in (("Train", self.train, "success"), ("Stop", self.stop, "danger"),
                                                    ("Reset", self.reset, ""), ("Save", self.save, ""),
                                                    ("Load", self.load, ""))}
        a, b = self.arch, self.buttons
        self.export_bar = export = ExportBar(s, {"curves": "ae-tl-curves", "heads": "ae-tl-heads-0"},
                           {"timeline": (("gif", "html"), self.timeline_file),
                            "attention maps": maps_export(s.probe_maps)}, name="transformer")
        self.controls = w.VBox([
            section("Example", self.preset),
            section("Task", labelled("task", a["task"], "90px"), labelled("length", a["length"], "90px"),
                    labelled("vocabulary", a["vocab"], "90px"), self.upload),
            section("Model", *(labelled(label, a[name], "90px") for name, label in (
                ("kind", "model"), ("layers", "layers"), ("width", "width"), ("heads", "heads"), ("pooling", "pooling"),
                ("norm", "LayerNorm"), ("positional", "positions"), ("score", "cross score")))),
            section("Compare", a["compare"], labelled("its heads", a["heads_b"], "90px"),
                    labelled("its cross score", a["score_b"], "90px")),
            section("Training", labelled("learning rate", self.lr, "90px"), labelled("batch size", self.batch_size, "90px"),
                    labelled("steps", self.steps, "90px"), w.HBox([b["Train"], b["Stop"], b["Reset"]])),
            section("Translate (dates, numbers, your pairs)", self.translator.controls),
            section("Checkpoint folder", self.path, w.HBox([b["Save"], b["Load"]]), *self.your_files),
            section("Export", export),
            section("Share", CopyLink(lambda: links.query(s.key, s.state()))),
            self.status,
        ], layout=w.Layout(width="330px", min_width="300px", flex="0 1 330px"))

    def _on_runs(self) -> None:
        for binding in self.bindings:
            binding.show()  # options that follow the task (pooling, heads) and a loaded model's settings
        text = self.session.task.startswith(TEXT_PREFIX) or self.session.translates(self.session.task)
        self.arch["length"].disabled = self.arch["vocab"].disabled = text
        seq2seq = self.session.kind == "encoder-decoder"
        self.arch["score"].disabled = self.arch["score_b"].disabled = not seq2seq
        self.monitor.show(self.session.runs)

    @property
    def runs(self) -> list:
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
        snapshots = self.session.runs[0].trainer.snapshots if self.session.runs else []
        if len(snapshots) < 2:
            raise ValueError("There is no timeline yet: train for a few steps first.")
        layer = snapshots[-1].maps.n_layers - 1
        return timeline_gif(snapshots, layer) if fmt == "gif" else timeline_html(snapshots, layer)
