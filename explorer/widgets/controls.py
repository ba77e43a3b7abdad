"""What every panel shares: controls bound to a session's settings, its status line, layout helpers.

``bind(control, session, "temperature")`` keeps a control and a setting in step both ways. A value the session
refuses is explained in the status line and the control goes back to the value that holds. A panel declares its
controls as ``Row``s (the setting, how to make the control, its label and CSS class) and ``Form`` makes and binds
them. No maths, no plotting, no state of its own: the session owns the state.
"""

from __future__ import annotations

import contextlib
import functools
import html
import traceback
from dataclasses import dataclass
from typing import Callable

import ipywidgets as widgets

from explorer.sessions.base import Session, friendly_error
from explorer.views.heatmaps import unique_labels

STATUS_STYLES = {  # success green, warnings amber, errors red
    "info": "color:#333",
    "ok": "color:#1a7f37",
    "busy": "color:#0969da",
    "warning": "color:#9a6700",
    "error": "color:#b42318;font-weight:600",
}
EXPLAIN_STYLE = "color:#57606a;font-size:0.95em;line-height:1.35;margin:2px 16px 10px 0;max-width:900px"


class StatusLine(widgets.HTML):
    """The session's status, one line under the controls: progress, results, and errors in plain words."""

    def __init__(self, session: Session, **kwargs):
        super().__init__(**kwargs)
        self.add_class("ae-status")
        self.session = session
        session.observe(lambda _: self.refresh(), ["status", "status_kind"])
        self.refresh()

    def refresh(self) -> None:
        kind = self.session.status_kind
        self.value = (f'<span class="ae-status-{kind}" style="{STATUS_STYLES.get(kind, "")}">'
                      f"{html.escape(self.session.status)}</span>")

    @property
    def kind(self) -> str:
        return self.session.status_kind

    @property
    def text(self) -> str:
        return self.session.status


class Binding:
    """One control bound to one setting; ``to_view``/``to_setting`` convert where they differ (text boxes).

    ``same(a, b)`` says two values are one for this control: a slider that snaps the setting's value to its
    steps (0.5 on a log slider becomes 0.501) sends the snapped value back, which must not change the setting.
    """

    def __init__(self, control: widgets.Widget, session: Session, name: str, trait: str = "value",
                 to_view: Callable = lambda v: v, to_setting: Callable = lambda v: v, options: Callable | None = None,
                 same: Callable | None = None):
        self.control, self.session, self.name, self.trait = control, session, name, trait
        self.to_view, self.to_setting, self.options, self.same = to_view, to_setting, options, same
        self._writing = False
        control.observe(self._from_control, trait)
        session.observe(self._from_session, name)
        self.show()

    @contextlib.contextmanager
    def writing(self):
        """While the binding writes the control, the control's own change events are not settings."""
        self._writing = True
        try:
            yield
        finally:
            self._writing = False

    def show(self) -> None:
        value = self.to_view(getattr(self.session, self.name))
        with self.writing():
            if self.options is not None:  # a choice among options that depend on other settings or records
                options = self.options()
                if list(self.control.options) != list(options):
                    self.control.options = options
                values = [option[1] if isinstance(option, tuple) else option for option in options]
                if value not in values:
                    return  # its option arrives with the record it belongs to (the reading of a new text)
            setattr(self.control, self.trait, value)

    def _from_session(self, change) -> None:
        self.show()

    def _from_control(self, change) -> None:
        if self._writing:
            return
        try:
            value = self.to_setting(change["new"])
            if self.same is not None and self.same(value, getattr(self.session, self.name)):
                return
            self.session.update(**{self.name: value})
        except ValueError as error:
            self.session.say(str(error), "error")
            self.show()  # the control shows the value that holds


def bind(control, session, name, **options) -> Binding:
    return Binding(control, session, name, **options)


def same_value(value):
    return value


@dataclass(frozen=True)
class Row:
    """One control, declared: the ``setting`` it shows, ``make()`` to build it, the ``label`` on its left ("" when
    the control says what it is), its CSS class ``tag``. ``options(session)`` gives choices that follow other
    settings; a setting with fixed choices (``sessions.rules.Choice``) offers its own. ``to_view`` and
    ``to_setting`` convert where the control and the setting differ; ``name`` tells two rows of one setting apart;
    ``same(control)`` says when two values are one for a control that snaps them (``Binding``)."""

    setting: str
    make: Callable[[], widgets.Widget]
    label: str = ""
    tag: str = ""
    options: Callable[[Session], list] | None = None
    to_view: Callable = same_value
    to_setting: Callable = same_value
    name: str = ""
    same: Callable[[widgets.Widget], Callable] | None = None  # for a control that snaps values (a log slider)


def grows(width: str) -> str:
    """A width in px, as read at the widgets' 13 px font, in em: it grows with the font (present mode)."""
    return f"{float(width[:-2]) / 13:.2f}em" if width.endswith("px") else width


def control(kind: type, width: str = "", max_width: str = "", **options) -> Callable[[], widgets.Widget]:
    """What makes one control, such as ``control(widgets.Dropdown, "170px")``: widgets are made with the panel,
    on the kernel's thread, never when a module is imported. Widths in px grow with the font (``grows``)."""
    size = {name: grows(value) for name, value in (("width", width), ("max_width", max_width)) if value}
    return lambda: kind(**({"layout": widgets.Layout(**size)} if size else {}), **options)


CHOOSE = "(choose an example)"


def head_numbers(model, head: int) -> list[int]:
    """The heads a loaded model has (before one loads: up to the head the setting names)."""
    return list(range(model.n_heads if model is not None else max(head + 1, 1)))


def positions(tokens, first: tuple) -> list:
    """Choices of a token position: ``first`` (a ``(label, value)`` such as ``("(none)", -1)``), then each token,
    named as the axes name it ("8: the·2" for the second "the")."""
    return [first] + [(f"{i}: {t}", i) for i, t in enumerate(unique_labels(tokens))]


def preset_row(width: str = "250px", label: str = "", tag: str = "", choose: str = CHOOSE, max_width: str = "") -> Row:
    """The Example dropdown of a tab: its presets, after ``choose`` (which sets none) unless a preset is required."""
    def options(session: Session) -> list:
        return list(session.presets) if session.preset_required else [choose, *session.presets]
    return Row("preset", control(widgets.Dropdown, width, max_width), label, tag, options,
               to_view=lambda v: v or choose, to_setting=lambda v: "" if v == choose else v)


class Form:
    """A panel's controls made from ``Row``s and bound to ``session``: ``form[name]`` is a control and
    ``form.rows(*names)`` the controls with their labels, for a section."""

    def __init__(self, session: Session, rows, label_width: str = "90px"):
        self.session, self.label_width = session, label_width
        self.controls: dict[str, widgets.Widget] = {}
        self.bindings: dict[str, Binding] = {}
        self._labels: dict[str, str] = {}
        for row in rows:
            self.add(row)

    def add(self, row: Row) -> widgets.Widget:
        name, made = row.name or row.setting, row.make()
        if row.tag:
            made.add_class(row.tag)
        choices = getattr(self.session.traits()[row.setting], "choices", None)
        options = (lambda: row.options(self.session)) if row.options else (
            (lambda: list(choices)) if choices is not None and hasattr(made, "options") else None)
        self.bindings[name] = bind(made, self.session, row.setting, to_view=row.to_view, to_setting=row.to_setting,
                                   options=options, same=row.same(made) if row.same else None)
        self.controls[name] = made
        self._labels[name] = row.label
        return made

    def __getitem__(self, name: str) -> widgets.Widget:
        return self.controls[name]

    def rows(self, *names: str, width: str = "") -> list[widgets.Widget]:
        """The controls ``names``, each with its label (``width`` wide) on its left."""
        return [labelled(self._labels[name], self[name], width or self.label_width) if self._labels[name] else self[name]
                for name in names]

    def show(self) -> None:
        """Every control from its setting again (options that follow other settings or records)."""
        for binding in self.bindings.values():
            binding.show()


def shows_errors(method: Callable) -> Callable:
    """Decorate a panel method (a button's action) so that any error goes to the status line, never the page."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as error:  # noqa: BLE001 - the page must never show a traceback
            if not isinstance(error, ValueError):
                traceback.print_exc()
            self.session.say(friendly_error(error), "error")
            return None

    return wrapper


def guarded(session: Session, action: Callable) -> Callable:
    """``action`` for a button or a click: any refusal is explained in the session's status line."""

    def run(*args, **kwargs):
        try:
            return action(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - the page must never show a traceback
            if not isinstance(error, ValueError):
                traceback.print_exc()
            session.say(friendly_error(error), "error")
            return None

    return run


def button(description: str, action: Callable, name: str, style: str = "", icon: str = "",
           width: str = "90px") -> widgets.Button:
    """A button tagged ``name`` (a CSS class) that runs ``action()``; at least ``width`` wide, wider when its words
    need it (present mode draws them larger)."""
    control = widgets.Button(description=description, button_style=style, icon=icon,
                             layout=widgets.Layout(min_width=width, width="auto", align_self="flex-start"))
    control.add_class(name)
    control.on_click(lambda _: action())
    return control


def explanation(name: str = "") -> widgets.HTML:
    """The "what am I looking at?" line under a view (its text comes from ``explorer.views.words``)."""
    line = widgets.HTML(layout=widgets.Layout(width="100%"))
    line.add_class("ae-explain")
    if name:
        line.add_class(name)
    return line


def explain(line: widgets.HTML, text: str) -> None:
    """Put ``text`` (plain words, escaped here) in an explanation line; empty text hides it."""
    value = f'<div style="{EXPLAIN_STYLE}">{html.escape(text)}</div>' if text else ""
    if line.value != value:
        line.value = value


def progress_bar(session: Session, name: str, **layout) -> widgets.FloatProgress:
    """The bar of a long read: it follows ``session.progress`` and shows only while the session is busy with it."""
    bar = tagged(widgets.FloatProgress(min=0.0, max=1.0, layout=widgets.Layout(visibility="hidden", **layout)), name)

    def follow(_=None) -> None:
        bar.value = session.progress
        bar.layout.visibility = "visible" if session.busy and 0 < session.progress < 1 else "hidden"

    session.observe(follow, ["progress", "busy"])
    return bar


def tagged(widget: widgets.Widget, name: str) -> widgets.Widget:
    widget.add_class(name)
    return widget


def labelled(description: str, widget: widgets.Widget, width: str = "130px") -> widgets.HBox:
    """A control with its label on the left, aligned with the others in a column. A width in px is read at the
    widgets' 13 px font and grows with it (present mode); a label longer than its width gets its room."""
    label = widgets.Label(description, layout=widgets.Layout(min_width=grows(width), width="auto"))
    return widgets.HBox([label, widget], layout=widgets.Layout(flex_flow="row wrap"))


def section(title: str, *children: widgets.Widget) -> widgets.VBox:
    """A titled group of widgets."""
    return widgets.VBox([widgets.HTML(f"<b>{html.escape(title)}</b>"), *children],
                        layout=widgets.Layout(margin="0 12px 8px 0"))


def columns(controls: widgets.Widget, outputs: widgets.Widget) -> widgets.Box:
    """Controls beside the figures, stacked above them when the page (a notebook column) is narrow."""
    box = widgets.Box([controls, outputs], layout=widgets.Layout(display="flex", flex_flow="row wrap",
                                                                 align_items="flex-start", width="100%"))
    box.add_class("ae-columns")
    return box


class ModelBox(widgets.VBox):
    """The box where a model's name or folder is typed, and Load model. Load (or Enter) reads the box. A model that
    cannot be loaded leaves the typed text in the box, so a typo can be fixed, and the status line says why; the
    session keeps its model. The box shows the session's model again once one is loaded (from a link too).

    ``loaded`` names the session's trait that holds the loaded model."""

    def __init__(self, session: Session, loaded: str, name: str, placeholder: str):
        self.session = session
        self.text = tagged(widgets.Text(placeholder=placeholder, continuous_update=False,
                                        layout=widgets.Layout(width="100%", max_width="25em")), f"{name}-model-name")
        self.load_button = button("Load model", self.load, f"{name}-load", icon="download", width="120px")
        super().__init__([self.text, self.load_button])
        self.text.observe(lambda _: self.load(), "value")
        session.observe(lambda _: self.show_loaded(), loaded)
        self.show_loaded()

    def show_loaded(self) -> None:
        self.text.value = self.session.model

    @shows_errors
    def load(self) -> None:
        """Load the model named in the box (the session keeps its own until the new one is in)."""
        self.session.update(model=self.text.value.strip())
