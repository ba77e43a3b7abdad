"""The Language model tab's state: which model, which prompt, how to generate, where to look, which heads are ablated.

Loading, every forward pass and every generation run in the session's worker; the layer, head, view and token only
choose what to draw from the last ``generation`` (the model is not run again).
"""

from __future__ import annotations

import time

from traitlets import Any, Float, Int, List, TraitError, Unicode, observe

from explorer.arguments import seed as check_seed, whole
from explorer.sessions.base import Session, ablated_heads, place_in_model, validate
from explorer.sessions.faithful import CheckInput, FaithfulnessCheck
from explorer.sessions.rules import Choice
from explorer.sessions.sinks import SinkExperiment
from explorer.threads import Throttle

INDUCTION_LENGTH = 20
PRESETS = {
    "induction heads": dict(max_new_tokens=1, temperature=0.0, layer=0, head=0, view="head"),
    "attention sinks": dict(prompt="The quick brown fox jumps over the lazy dog. It was a sunny day in the park.",
                            max_new_tokens=8, temperature=0.0, layer=5, head=0, view="head"),
    "a question and its answer": dict(prompt="Question: What is the capital of France?\nAnswer:", max_new_tokens=8,
                                      temperature=0.0, layer=10, head=0, view="head"),
    "attention sinks (Xiao et al. 2023)": dict(window=256, sinks=4, sink_tokens=2000, sink_text="bundled"),
}
VIEWS = ("head", "layer")
DEFAULT_PROMPT = "Once upon a time, there was a little cat who"


LONG_READ_TOKENS = 1024  # from this many tokens a read says how long it will take and how far it got


def head_scores(maps, progress=None, stop=None) -> dict:
    """The head finder's scores of ``maps``, each ``[layers, heads]`` (``explorer.heads.finder_scores``)."""
    from explorer import heads

    return heads.finder_scores(maps, progress, stop)


def _load(name_or_path: str):
    from explorer.models import language

    model = language.load(name_or_path or None)
    model.time_a_pass()  # so a long prompt's first read can say how long it will take
    return model


class LanguageSession(SinkExperiment, Session):
    """One decoder-only language model and its last generation; ``generation`` is what the views draw (and
    ``sink_run`` the sink experiment's, ``explorer.sessions.sinks``)."""

    key = "llm"
    title = "Language model"
    presets = {name: {"preset": name} for name in PRESETS}

    preset = Unicode("", help="example").tag(link=True)
    model = Unicode("", help="model").tag(link=True)  # "" is the packaged SmolLM2
    prompt = Unicode(DEFAULT_PROMPT, help="prompt").tag(link=True)
    max_new_tokens = Int(12, help="number of new tokens").tag(link=True)
    temperature = Float(0.0, help="temperature").tag(link=True)
    seed = Int(0, help="seed").tag(link=True)
    layer = Int(0, help="layer").tag(link=True)
    head = Int(0, help="head").tag(link=True)
    view = Choice(VIEWS, help="view").tag(link=True)
    token = Int(-1, help="token").tag(link=True)  # the picked position, -1 for the last
    zoom = Int(-1, help="zoom").tag(link=True)  # first token of the window shown whole in a long map, -1: all
    ablated = List(help="ablated heads").tag(link=True)  # [[layer, head], ...]

    language_model = Any(None)  # the loaded LanguageModel
    generation = Any(None)  # explorer.models.language.Generation of the last run
    streamed = Unicode("")  # the tokens generated so far by the running generation
    scores = Any(None)  # dict: head finder score name -> [layers, heads] of the last generation's maps
    probe = Any(None)  # dict: induction scores [L, H], top heads, second-copy loss with and without them

    def __init__(self, owner=None, language_model=None, **settings):
        self._loaded_model = settings.get("model", "")
        self.runs = 0  # model runs (generations and probes), so tests can see a head switch runs nothing
        super().__init__(owner, **settings)
        self.faithful = FaithfulnessCheck(self, self.faithful_inputs)
        self.observe(lambda _: self.faithful.show_kept(), ["language_model", "generation", "token", "layer"])
        if language_model is not None:
            self._loaded(language_model)
        else:
            self.load_model(self.model)

    # ----- settings ----------------------------------------------------------------------------------------------
    def update(self, **changes) -> None:
        preset = self.chosen_preset(changes)
        if preset:
            changes = {"token": -1, **PRESETS[preset], **changes}
            if preset == "induction heads" and self.language_model is not None and "prompt" not in changes:
                changes["prompt"] = self._repeated_prompt()
        self.with_preset(preset, changes)

    def ordered(self, settings: dict) -> list:
        first = ("model", "preset", "prompt")
        return sorted(settings.items(), key=lambda item: first.index(item[0]) if item[0] in first else len(first))

    @validate("layer", "head")
    def _valid_place(self, proposal):
        return place_in_model(proposal["trait"].name, proposal["value"], self.language_model)

    @validate("max_new_tokens")
    def _valid_count(self, proposal):
        from explorer.models.language import MAX_NEW_TOKENS

        return whole(proposal["value"], "number of new tokens max_new_tokens", 1, MAX_NEW_TOKENS)

    @validate("seed")
    def _valid_seed(self, proposal):
        return check_seed(proposal["value"])

    @validate("temperature")
    def _valid_temperature(self, proposal):
        if not 0 <= proposal["value"] <= 10:
            raise TraitError(f"The temperature must be a number from 0 (always the likeliest token) to 10, "
                             f"got {proposal['value']}.")
        return proposal["value"]

    @validate("prompt")
    def _valid_prompt(self, proposal):
        if not proposal["value"].strip():
            raise TraitError("The prompt is empty: type some text for the model to read.")
        return proposal["value"]

    def _position(self, value: int, wrong: str) -> int:
        """A token position of the last generation, or -1 (none); ``wrong`` is the message's start otherwise."""
        n = len(self.generation.tokens) if self.generation is not None else None
        if value < -1 or (n is not None and value >= n):
            raise TraitError(f"{wrong}: the text has {n} tokens.")
        return value

    @validate("zoom")
    def _valid_zoom(self, proposal):
        value = proposal["value"]
        return self._position(value, f"The zoom starts at token {value}, which does not exist")

    @validate("token")
    def _valid_token(self, proposal):
        return self._position(proposal["value"], f"Token {proposal['value']} does not exist")

    @validate("ablated")
    def _valid_ablated(self, proposal):
        return ablated_heads(proposal["value"], self.language_model)

    # ----- the model ---------------------------------------------------------------------------------------------
    @observe("model")
    def _on_model(self, change) -> None:
        if change["new"] != self._loaded_model:
            self.load_model(change["new"])

    def load_model(self, name_or_path: str) -> None:
        """Load another model in the worker; if it fails, the current one stays (and the setting names it)."""
        self.load_in_worker(name_or_path, _load, "SmolLM2")

    def _loaded(self, language_model) -> None:
        self.language_model, self._loaded_model = language_model, self.model
        self.busy = False
        n_layers, n_heads = language_model.n_layers, language_model.n_heads
        self.update(layer=min(self.layer, n_layers - 1), head=min(self.head, n_heads - 1),
                    ablated=[p for p in self.ablated if p[0] < n_layers and p[1] < n_heads])
        self.say(f"Loaded {language_model.name}: {n_layers} layers x {n_heads} heads. Press Generate.", "ok")

    def _repeated_prompt(self) -> str:
        from explorer.heads import repeated_tokens

        ids = repeated_tokens(self.language_model, INDUCTION_LENGTH, self.seed)
        return self.language_model.tokenizer.decode(ids[1:])

    # ----- actions -----------------------------------------------------------------------------------------------
    def generate(self) -> None:
        """Continue the prompt in the worker; tokens arrive in ``streamed``, then ``generation`` holds the maps.

        A long prompt says how long it will take, then how many layers are read and scored; Stop during that keeps
        the previous view (during the new tokens it ends the text after the current one)."""
        if self.language_model is None:
            raise ValueError("The model is still loading; press Generate when it is ready.")
        if self.worker.running or self.busy:
            raise ValueError("A generation is already running: wait for it, or press Stop.")
        model, home = self.language_model, self.home
        args = (self.prompt, self.max_new_tokens, self.temperature, self.seed)
        ablated = [tuple(pair) for pair in self.ablated]  # the text is written by the ablated model
        ids, full_length = model.encode(self.prompt, model.max_tokens - 1)
        long = len(ids) >= LONG_READ_TOKENS
        reading = _Progress(self, f"Reading {len(ids):,} tokens") if long else None
        scoring = _Progress(self, "Scoring the heads") if long else None
        self.streamed, self.progress = "", 0.0

        def on_token(label, candidates) -> None:
            home.call(self._arrived, label)

        def job():
            self.runs += 1
            generation = model.generate(*args, on_token=on_token, ablate=ablated, progress=reading)
            return generation, head_scores(generation.maps, scoring, model.stop_flag)

        self.submit(self._start_message(model, len(ids), full_length), job, self._generated)

    @staticmethod
    def _start_message(model, n_tokens: int, full_length: int) -> str:
        cut = (f"The prompt is {full_length:,} tokens; {model.name} reads {model.max_tokens:,}, so the first "
               f"{n_tokens:,} are read. " if full_length > n_tokens else "")
        seconds = model.estimate_seconds(n_tokens) if n_tokens >= LONG_READ_TOKENS else None
        if seconds is None:
            return f"{cut}Generating…"
        return (f"{cut}Reading {n_tokens:,} tokens takes about {_duration(seconds)}, then the heads are scored; Stop "
                "keeps the previous view.")

    def _arrived(self, label: str) -> None:
        self.streamed += label
        self.say(f"Generating: {self.streamed}", "busy")

    def _generated(self, result) -> None:
        generation, scores = result
        with self.hold_trait_notifications():
            self.generation, self.scores = generation, scores
            self.token, self.zoom = -1, -1
            self.progress = 1.0
        maps = generation.maps
        ended = " (stopped)" if generation.stopped else ""
        self.say(f"{len(generation.tokens)} tokens{ended}, {maps.n_layers} layers x {maps.n_heads} heads. "
                 f"{maps.meta.notice}".strip(), "ok")

    def find_heads(self) -> None:
        """Score every head on a repeated random sequence and measure the top-3 induction heads' ablation effect."""
        if self.language_model is None:
            raise ValueError("The model is still loading; try again when it is ready.")
        from explorer.heads import second_copy_loss, top_heads

        model, seed, chosen = self.language_model, self.seed, tuple(tuple(p) for p in self.ablated)

        def job():
            self.runs += 1
            scores = model.induction_scores(INDUCTION_LENGTH, seed)
            top = top_heads(scores, min(3, scores.numel()))
            loss = second_copy_loss(model, (), INDUCTION_LENGTH, seed)
            ablated = second_copy_loss(model, top, INDUCTION_LENGTH, seed)
            mine = second_copy_loss(model, chosen, INDUCTION_LENGTH, seed) if chosen else loss
            return dict(induction=scores, top=top, loss=loss, ablated_loss=ablated, chosen=chosen, chosen_loss=mine)

        self.submit("Finding induction heads…", job, self._found)

    def _found(self, probe) -> None:
        self.probe = probe
        self.say(f"Top induction heads {probe['top']}: second-copy loss {probe['loss']:.3f}, "
                 f"{probe['ablated_loss']:.3f} with them ablated.", "ok")

    def stop_work(self) -> None:
        if self.language_model is not None:
            self.language_model.stop()
        super().stop_work()

    def select_head(self, layer: int, head: int) -> None:
        self.update(layer=layer, head=head)

    def select_token(self, index: int | None) -> None:
        self.update(token=-1 if index is None else whole(index, "token", -1))

    def zoom_to(self, token: int | None, window: int) -> None:
        """Show the ``window`` tokens around ``token`` whole (``None``: the whole text again, pooled)."""
        if token is not None:  # checked before a missing generation ends the call: nan is refused either way
            token, window = whole(token, "token", 0), whole(window, "zoom window", 1)
        if token is None or self.generation is None:
            return self.update(zoom=-1)
        n = len(self.generation.tokens)
        self.update(zoom=max(0, min(token - window // 2, n - window)))

    def toggle_ablation(self) -> None:
        pairs = {tuple(p) for p in self.ablated} ^ {(self.layer, self.head)}
        self.update(ablated=[list(p) for p in sorted(pairs)])

    def maps(self):
        return None if self.generation is None else self.generation.maps

    def faithful_inputs(self) -> CheckInput:
        """What the faithfulness check reads: the last generation up to the picked position (its next token's
        log-probability), and the attention of the layer on screen."""
        if self.language_model is None or self.generation is None:
            raise ValueError("Press Generate first: the check measures the model's next token at a position.")
        return CheckInput(self.language_model, tuple(self.generation.ids), self.token, self.layer)

    def candidates(self) -> tuple:
        """The picked position's top-5 next tokens with probabilities."""
        maps = self.maps()
        if maps is None:
            return ()
        return maps.meta.next_tokens[self.token]


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


class _Progress:
    """A worker's ``progress(done, total)`` for one phase of a read: the session's progress and status follow it on
    the home thread, a few times a second, with the time left at the pace so far."""

    def __init__(self, session: LanguageSession, what: str):
        self.session, self.what, self.first = session, what, None
        self.show = Throttle(session.home, self._show, 0.3)

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self.first is None:  # the pace is timed from the first layer done
            self.first = (done, now)
        pace = (now - self.first[1]) / (done - self.first[0]) if done > self.first[0] else None
        self.show(done, total, None if pace is None else pace * (total - done))

    def _show(self, done: int, total: int, left: float) -> None:
        session = self.session
        if session.busy:  # a report that arrives after the work ended says nothing
            session.progress = done / total
            left = "" if left is None else f", about {_duration(left)} left"
            session.say(f"{self.what}: layer {done} of {total}{left}. Stop keeps the previous view.", "busy")
