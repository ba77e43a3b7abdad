"""What every panel shares: controls bound to a session's settings, its status line, layout helpers.

``bind(control, session, "temperature")`` keeps a control and a setting in step both ways. A value the session
refuses is explained in the status line and the control goes back to the value that holds. No maths, no
plotting, no state of its own: the session owns the state.
"""

from __future__ import annotations

import contextlib
import functools
import html
import traceback
from typing import Callable

import ipywidgets as widgets

from explorer.sessions.base import Session, friendly_error

STATUS_STYLES = {
    "info": "color:#333",
    "ok": "color:#1a7f37",
    "busy": "color:#0969da",
    "error": "color:#b42318;font-weight:600",
}


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
    """A button tagged ``name`` (a CSS class) that runs ``action()``."""
    control = widgets.Button(description=description, button_style=style, icon=icon,
                             layout=widgets.Layout(width=width))
    control.add_class(name)
    control.on_click(lambda _: action())
    return control


def tagged(widget: widgets.Widget, name: str) -> widgets.Widget:
    widget.add_class(name)
    return widget


def labelled(description: str, widget: widgets.Widget, width: str = "130px") -> widgets.HBox:
    """A control with its label on the left, aligned with the others in a column."""
    return widgets.HBox([widgets.Label(description, layout=widgets.Layout(width=width)), widget],
                        layout=widgets.Layout(flex_flow="row wrap"))


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
