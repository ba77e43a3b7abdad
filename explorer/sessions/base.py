"""The state of one tab: validated settings, the models it runs and the records it makes; no widgets.

A session's settings are traitlets traits tagged ``link=True`` (in links) or ``setting=True`` (not in links, such
as a checkpoint folder on the server). ``update(**settings)`` sets several at once and
refuses values that cannot hold with a ``ValueError`` whose message the panel shows; nothing changes then.
Validators (``@validate``) raise ``TraitError`` with such a message, so traitlets rolls the whole update back.
``state()`` and ``load_state()`` turn the settings into a link's ``state=`` and back (``explorer.links``).

Long work runs in the session's ``worker``; its results come back on the session's home thread (the kernel's,
in Jupyter), where every trait change happens, so panels that observe the traits touch widgets only there.
"""

from __future__ import annotations

import math
from typing import ClassVar

from traitlets import Bool, Float, HasTraits, Int, List, TraitError, Unicode, validate

from explorer import links
from explorer.threads import Home, Worker, home

STATUS_KINDS = ("info", "ok", "busy", "warning", "error")


def say_name(name: str, shown: int = 40) -> str:
    """A name from a link or a user, shortened: a page-long name must not bury the message around it."""
    name = str(name)
    return name if len(name) <= shown else name[: shown - 3] + "..."


def unknown_name(kind: str, name: str, known) -> ValueError:
    """The error for a name that is not one of ``known`` (a tab, a preset, a task)."""
    return ValueError(f"There is no {kind} called '{say_name(name)}'. Choose one of: {', '.join(map(str, known))}.")


class Session(HasTraits):
    """Base of every tab's session: settings, a status line, progress, presets and links."""

    key: ClassVar[str] = ""  # the tab's name in links (?tab=...)
    title: ClassVar[str] = ""
    presets: ClassVar[dict[str, dict]] = {}
    preset_required: ClassVar[bool] = False  # the ``preset`` setting always names one (else "" is none chosen)

    status = Unicode("")  # what the tab's status line says
    status_kind = Unicode("info")  # one of STATUS_KINDS
    busy = Bool(False)  # long work is running
    progress = Float(0.0)  # 0..1 of the long work, when it can tell
    stoppable = Bool(False)  # the running work ends early on stop_work() (it polls the worker's stop flag)
    notice = Unicode("")  # what a link could not apply

    def __init__(self, owner: Home | None = None, **settings):
        super().__init__()
        self.home = owner or home()
        self.worker = Worker(self.home, name=f"{self.key or 'session'}-worker")
        if settings:
            self.update(**settings)

    # ----- status ------------------------------------------------------------------------------------------------
    def say(self, text: str, kind: str = "info") -> None:
        """Show ``text`` in the tab's status line (``kind``: info, ok, busy, warning or error)."""
        self.status_kind = kind if kind in STATUS_KINDS else "info"
        self.status = str(text)

    def fail(self, error: BaseException) -> None:
        """Show an error in words: ours are sentences already; anything else gets a short, honest prefix."""
        self.busy = False
        self.say(friendly_error(error), "error")

    def load_in_worker(self, name_or_path: str, load, what: str) -> None:
        """Load the model named by the ``model`` setting with ``load(name_or_path)`` in the worker; ``_loaded(model)``
        then takes it. In a classroom only the teacher's folders are read. If it fails, the loaded model stays and
        the setting names it again (``_loaded_model``)."""
        from explorer.paths import model_source

        try:
            name_or_path = model_source(name_or_path)
        except ValueError as error:
            return self._not_loaded(error)
        self.busy = True
        self.say(f"Loading {name_or_path or what}…", "busy")
        self.worker.submit(load, name_or_path, done=self._loaded, failed=self._not_loaded, latest=True)

    def _not_loaded(self, error) -> None:
        self.model = self._loaded_model
        self.fail(error)

    # ----- settings ----------------------------------------------------------------------------------------------
    @classmethod
    def setting_names(cls) -> list[str]:
        """The settings a link carries."""
        return sorted(cls.class_trait_names(link=True))

    @classmethod
    def all_setting_names(cls) -> list[str]:
        """Every setting ``update`` accepts: those of links and the local ones (``setting=True``)."""
        return sorted(set(cls.setting_names()) | set(cls.class_trait_names(setting=True)))

    def settings(self) -> dict:
        """Every setting a link carries, by name, as JSON-ready values."""
        return {name: _plain(getattr(self, name)) for name in self.setting_names()}

    def update(self, **changes) -> None:
        """Set several settings together; a ValueError (the message to show) leaves every setting as it was."""
        names = set(self.all_setting_names())
        unknown = [name for name in changes if name not in names]
        if unknown:
            raise ValueError(f"{type(self).__name__} has no setting called {say_name(unknown[0])}.")
        values = {name: self.coerce(name, value) for name, value in changes.items()}
        try:
            with self.hold_trait_notifications():
                for name, value in values.items():
                    setattr(self, name, value)
                self.check_settings()
        except TraitError as error:
            raise ValueError(str(error)) from None

    def check_settings(self) -> None:
        """Called inside ``update`` with the new values in place: raise a ``TraitError`` to refuse them all."""

    def coerce(self, name: str, value):
        """``value`` as the type of setting ``name`` (text typed in a box becomes a number); a ValueError if it can't."""
        trait = self.traits()[name]
        label = trait.help or name.replace("_", " ")
        try:
            if isinstance(trait, Bool):
                return _boolean(value)
            if isinstance(trait, Int):
                number = float(str(value).strip()) if isinstance(value, str) else float(value)
                if isinstance(value, bool) or not math.isfinite(number) or number != int(number):
                    raise ValueError
                return int(number)
            if isinstance(trait, Float):
                number = float(str(value).strip()) if isinstance(value, str) else float(value)
                if isinstance(value, bool) or not math.isfinite(number):
                    raise ValueError
                return number
            if isinstance(trait, Unicode):
                if not isinstance(value, str):
                    raise ValueError
                return value
            if isinstance(trait, List):
                if not isinstance(value, (list, tuple)):
                    raise ValueError
                return list(value)
        except (TypeError, ValueError, OverflowError):
            kind = {Bool: "true or false", Int: "a whole number", Float: "a number", Unicode: "text", List: "a list"}
            wanted = next((words for cls, words in kind.items() if isinstance(trait, cls)), "a different value")
            raise ValueError(f"'{say_name(value)}' is not {wanted}: the {label} must be {wanted}.") from None
        return value

    # ----- presets and links -------------------------------------------------------------------------------------
    def known_preset(self, name: str, empty: bool = False) -> str:
        """``name`` when it is one of ``presets`` (or, with ``empty``, ""); a ValueError that lists them otherwise."""
        if not (name in self.presets or empty and name == ""):
            raise unknown_name("preset", name, self.presets)
        return name

    @validate("preset")
    def _valid_preset(self, proposal):
        """The ``preset`` setting of any tab that has one."""
        try:
            return self.known_preset(proposal["value"], empty=not self.preset_required)
        except ValueError as error:
            raise TraitError(str(error)) from None

    def apply_preset(self, name: str) -> None:
        """Set the settings of one of ``presets``; a ValueError lists them if the name is unknown."""
        self.update(**self.preset_settings(self.known_preset(name)))

    def preset_settings(self, name: str) -> dict:
        """The settings a preset sets (sessions with dependent settings add the ones it implies)."""
        return dict(self.presets[name])

    def state(self) -> str:
        """The settings as a link's ``state=`` string."""
        return links.encode(self.settings())

    def load_state(self, state: str) -> list[str]:
        """Apply a link's state, field by field; returns notices about what could not be applied.

        A state that cannot be read at all leaves the defaults; unknown or refused fields are dropped and named.
        """
        try:
            _, settings = links.decode(state)
        except ValueError as error:
            return [str(error)]
        known = set(self.setting_names())
        notices = []
        dropped = sorted(name for name in settings if name not in known)
        if dropped:
            notices.append(f"The link had settings this version does not know; they were left out: "
                           f"{', '.join(say_name(n, 24) for n in dropped[:5])}.")
        wanted = {name: value for name, value in settings.items() if name in known}
        try:
            self.update(**wanted)
        except ValueError:
            for name, value in self.ordered(wanted):  # one by one, so the good fields are kept
                try:
                    self.update(**{name: value})
                except ValueError as error:
                    notices.append(f"From the link, {name.replace('_', ' ')} was not applied: {error}")
        return notices

    def ordered(self, settings: dict) -> list[tuple[str, object]]:
        """Settings in the order they can be applied one by one (sessions put the ones others depend on first)."""
        return list(settings.items())

    # ----- work ---------------------------------------------------------------------------------------------------
    def submit(self, message: str, job, done, stoppable: bool = False) -> None:
        """Run ``job()`` in the worker (``message`` says what it does); ``done(result)`` then runs on the home thread,
        and an error is shown in words. A view that takes a while to build (bertviz's page) comes this way.
        ``stoppable``: the job polls ``worker.stopping``, so the panel offers Stop while it runs."""
        self.busy, self.progress, self.stoppable = True, 0.0, stoppable
        self.say(message, "busy")

        def finished(result) -> None:
            self.busy = self.worker.waiting
            self.stoppable = self.stoppable and self.busy
            done(result)

        def failed(error) -> None:
            self.stoppable = False
            self.fail(error)

        self.worker.submit(job, done=finished, failed=failed, latest=True)

    def wait(self, timeout: float = 120.0) -> bool:
        """Block (on the home thread) until the session's work is done and its results are in; False on timeout."""
        return self.home.wait_until(lambda: not self.worker.running and not self.busy, timeout)

    def stop_work(self) -> None:
        """End long work early (the page is gone, or the visitor pressed Stop)."""
        self.worker.stop()


def place_in_model(name: str, value: int, model=None) -> int:
    """A layer or head number that ``model`` (when loaded) has; a TraitError in words otherwise."""
    limit = None if model is None else {"layer": model.n_layers, "head": model.n_heads}[name]
    if value < 0 or (limit is not None and value >= limit):
        shown = f"{name}s 0 to {limit - 1}" if limit else f"{name}s from 0"
        owner = "this model has" if name == "layer" else "each layer has"
        raise TraitError(f"{name.capitalize()} {value} does not exist: {owner} {shown}.")
    return value


def ablated_heads(value, model=None) -> list[list[int]]:
    """A list of ``[layer, head]`` pairs, sorted and without repeats; a TraitError in words for anything else, or
    for a head that ``model`` (when loaded) does not have."""
    pairs = []
    for pair in value:
        try:
            layer, head = (int(v) for v in pair)
        except (TypeError, ValueError):
            raise TraitError(f"An ablated head is a (layer, head) pair of numbers, got {say_name(pair)}.") from None
        if model is not None:
            try:
                model.check_ablation([(layer, head)])
            except ValueError as error:
                raise TraitError(str(error)) from None
        pairs.append((layer, head))
    return [list(p) for p in sorted(set(pairs))]


def friendly_error(error: BaseException) -> str:
    """The message a student sees for an exception: ours are already in words; others get a short prefix."""
    if isinstance(error, ValueError):
        return str(error)
    return "Something went wrong inside the explorer, and the previous view is kept. Try again, or reload the page."


def _boolean(value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raise ValueError


def _plain(value):
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
