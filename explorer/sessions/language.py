"""The Language model tab's state: which model, which prompt, how to generate, where to look, which heads are ablated.

Loading, every forward pass and every generation run in the session's worker; the layer, head, view and token only
choose what to draw from the last ``generation`` (the model is not run again), or, with ``on_probe``, from the
induction probe's sequence, where the heads the probe found can be seen doing their job.

A preset sets everything its story depends on, runs, and opens the head it is about.
"""

from __future__ import annotations

import time

from traitlets import Any, Bool, Float, Int, List, TraitError, Unicode, observe

from explorer.arguments import seed as check_seed, whole
from explorer.sessions.base import Session, ablated_heads, place_in_model, validate
from explorer.sessions.faithful import CheckInput, FaithfulnessCheck
from explorer.sessions.rules import Choice
from explorer.sessions.sinks import SinkExperiment
from explorer.threads import Throttle

INDUCTION_LENGTH = 20
PRESETS = {  # "layer" and "head" where the story names its head; the others open the head their run finds
    "induction heads": dict(max_new_tokens=1, temperature=0.0, view="head", zoom=-1),
    "attention sinks": dict(prompt="The quick brown fox jumps over the lazy dog. It was a sunny day in the park.",
                            max_new_tokens=8, temperature=0.0, view="head", zoom=-1),
    "a question and its answer": dict(prompt="Question: What is the capital of France?\nAnswer:", max_new_tokens=8,
                                      temperature=0.0, layer=10, head=0, view="head", zoom=-1),
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
    on_probe = Bool(False, help="show on its probe").tag(link=True)  # draw the induction probe's sequence

    language_model = Any(None)  # the loaded LanguageModel
    generation = Any(None)  # explorer.models.language.Generation of the last run
    streamed = Unicode("")  # the tokens generated so far by the running generation
    scores = Any(None)  # dict: head finder score name -> [layers, heads] of the last generation's maps
    probe = Any(None)  # dict: induction scores [L, H], top heads, second-copy loss with and without them

    def __init__(self, owner=None, language_model=None, **settings):
        self._loaded_model = settings.get("model", "")
        self.runs = 0  # model runs (generations and probes), so tests can see a head switch runs nothing
        self._made_with: tuple | None = None  # (prompt, ablated heads) of the generation on screen
        self._pending: tuple | None = None  # a preset chosen before the model was loaded: (name, its changes)
        self._then, self._phases = None, []  # what to do once the running work is in; its _Progress reporters
        super().__init__(owner, **settings)
        self.faithful = FaithfulnessCheck(self, self.faithful_inputs)
        self.observe(lambda _: self.faithful.show_kept(), ["language_model", "generation", "token", "layer"])
        if language_model is not None:
            self._loaded(language_model)
        else:
            self.load_model(self.model)

    # ----- settings ----------------------------------------------------------------------------------------------
    def update(self, **changes) -> None:
        """As ``Session.update``; a preset also sets its prompt and generation settings, then runs (see
        ``_run_preset``). Showing the probe or the text again starts with no token picked."""
        preset, given = self.chosen_preset(changes), dict(changes)
        if preset:
            changes = {"token": -1, "on_probe": False, **PRESETS[preset], **changes}
            if preset == "induction heads" and self.language_model is not None and "prompt" not in changes:
                changes["prompt"] = self._repeated_prompt()
        elif "on_probe" in changes and self.coerce("on_probe", changes["on_probe"]) != self.on_probe:
            changes = {"token": -1, "zoom": -1, **changes}
        self.with_preset(preset, changes)
        if preset:
            self._run_preset(preset, given)

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
        """A token position of the maps on screen, or -1 (none); ``wrong`` is the message's start otherwise."""
        maps = self.maps()
        n = len(maps.tokens) if maps is not None else None
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
        if self._pending is not None:  # a preset (from a link) chosen while the model was loading
            preset, given = self._pending
            self._pending = None
            self.update(**given)

    def _repeated_prompt(self) -> str:
        from explorer.heads import repeated_tokens

        ids = repeated_tokens(self.language_model, INDUCTION_LENGTH, self.seed)
        return self.language_model.tokenizer.decode(ids[1:])

    # ----- presets ----------------------------------------------------------------------------------------------
    def _run_preset(self, preset: str, given: dict) -> None:
        """Generate with the preset's settings, then open the head it is about (unless ``given`` names one)."""
        if self.language_model is None:
            self._pending = (preset, given)
            return
        if preset == "attention sinks (Xiao et al. 2023)":  # its story is the perplexity, not a generation
            return self.run_sinks()
        if "layer" in given or "head" in given or preset not in ("induction heads", "attention sinks"):
            return self.generate()
        if preset == "induction heads":
            return self.generate(then=lambda: self.find_heads(then=self._open_top_induction_head))
        self.generate(then=self._open_top_sink)

    def _open_top_induction_head(self) -> None:
        layer, head = self.probe["top"][0]
        self.update(layer=layer, head=head)
        self.say(f"The strongest induction head is layer {layer}, head {head}: on the repeated tokens it looks at "
                 "the token after the earlier copy of the current one.", "ok")

    def _open_top_sink(self) -> None:
        from explorer.heads import top_heads

        if self.scores is None:
            return
        (layer, head), = top_heads(self.scores["attention sink"], 1)
        self.update(layer=layer, head=head)
        share = float(self.scores["attention sink"][layer, head])
        self.say(f"Layer {layer}, head {head} puts {share:.0%} of its attention on the first token, an attention "
                 "sink.", "ok")

    # ----- actions -----------------------------------------------------------------------------------------------
    def generate(self, then=None) -> None:
        """Continue the prompt in the worker; tokens arrive in ``streamed``, then ``generation`` holds the maps.

        ``progress`` and the status line follow the work: a long prompt says how long its reading takes and how many
        layers are read, then each new token is counted, then the heads are scored layer by layer. Stop while
        reading or scoring keeps the previous view; while writing it ends the text after the current token.
        ``then()`` runs once the generation is in."""
        if self.language_model is None:
            raise ValueError("The model is still loading; press Generate when it is ready.")
        if self.worker.running or self.busy:
            raise ValueError("A generation is already running: wait for it, or press Stop.")
        model, home = self.language_model, self.home
        args = (self.prompt, self.max_new_tokens, self.temperature, self.seed)
        ablated = [tuple(pair) for pair in self.ablated]  # the text is written by the ablated model
        made_with, n_new = (self.prompt, tuple(ablated)), self.max_new_tokens
        ids, full_length = model.encode(self.prompt, model.max_tokens - 1)
        reading = _Progress(self, f"Reading {len(ids):,} tokens") if len(ids) >= LONG_READ_TOKENS else None
        scoring = _Progress(self, "Scoring every head for the head finder")
        self._phases = [phase for phase in (reading, scoring) if phase is not None]
        self.streamed, self._then, written = "", then, []

        def on_token(label, candidates) -> None:
            written.append(label)
            home.call(self._arrived, label, len(written), n_new)

        def job():
            self.runs += 1
            generation = model.generate(*args, on_token=on_token, ablate=ablated, progress=reading)
            return made_with, generation, head_scores(generation.maps, scoring, model.stop_flag)

        self.submit(self._start_message(model, len(ids), full_length), job, self._generated)

    @staticmethod
    def _start_message(model, n_tokens: int, full_length: int) -> str:
        cut = (f"The prompt is {full_length:,} tokens; {model.name} reads {model.max_tokens:,}, so the first "
               f"{n_tokens:,} are read. " if full_length > n_tokens else "")
        seconds = model.estimate_seconds(n_tokens) if n_tokens >= LONG_READ_TOKENS else None
        if seconds is None:
            return f"{cut}Reading the prompt ({n_tokens:,} tokens)…"
        return (f"{cut}Reading {n_tokens:,} tokens takes about {_duration(seconds)}, then the heads are scored; Stop "
                "keeps the previous view.")

    def _arrived(self, label: str, count: int, n_new: int) -> None:
        self.streamed += label
        if self.busy:  # the writing's share of the work: the reading's bar, if any, is full by now
            self.progress = count / n_new
            self.say(f"Writing token {count} of {n_new}…" if count < n_new else
                     f"All {n_new} tokens written. Scoring every head for the head finder…", "busy")

    def _generated(self, result) -> None:
        made_with, generation, scores = result
        for phase in self._phases:  # a report still waiting in its throttle must not speak over the next work
            phase.over = True
        self._made_with = made_with
        with self.hold_trait_notifications():
            self.generation, self.scores = generation, scores
            self.token, self.zoom, self.on_probe = -1, -1, False
            self.progress = 1.0
        maps = generation.maps
        ended = " (stopped)" if generation.stopped else ""
        self.say(f"{len(generation.tokens)} tokens{ended}, {maps.n_layers} layers x {maps.n_heads} heads. "
                 f"{maps.meta.notice}".strip(), "warning" if maps.meta.notice else "ok")
        self._done()

    def _done(self) -> None:
        then, self._then = self._then, None
        if then is not None and not self.worker.stopping.is_set():
            then()

    def find_heads(self, then=None) -> None:
        """Score every head on a repeated random sequence and measure the top-3 induction heads' ablation effect;
        the probe keeps the sequence's maps, so a head can be shown on it (``on_probe``)."""
        if self.language_model is None:
            raise ValueError("The model is still loading; try again when it is ready.")
        if self.busy:
            raise ValueError("The model is busy: wait for it, or press Stop.")
        from explorer.heads import induction_score, repeated_tokens, second_copy_loss, top_heads

        model, seed, chosen = self.language_model, self.seed, tuple(tuple(p) for p in self.ablated)
        self._then = then

        def job():
            self.runs += 1
            maps = model.attend_ids(repeated_tokens(model, INDUCTION_LENGTH, seed))
            scores = induction_score(maps, INDUCTION_LENGTH)  # as model.induction_scores, with the maps kept
            top = top_heads(scores, min(3, scores.numel()))
            loss = second_copy_loss(model, (), INDUCTION_LENGTH, seed)
            ablated = second_copy_loss(model, top, INDUCTION_LENGTH, seed)
            mine = second_copy_loss(model, chosen, INDUCTION_LENGTH, seed) if chosen else loss
            return dict(induction=scores, top=top, loss=loss, ablated_loss=ablated, chosen=chosen, chosen_loss=mine,
                        maps=maps, length=INDUCTION_LENGTH)

        self.submit("Finding induction heads…", job, self._found)

    def _found(self, probe) -> None:
        from explorer.heads import heads_in_words

        self.probe = probe
        self.say(f"Top induction heads: {heads_in_words(probe['top'])}. Second-copy loss {probe['loss']:.3f}, "
                 f"{probe['ablated_loss']:.3f} with them ablated.", "ok")
        self._done()

    def out_of_date(self) -> bool:
        """Whether the generation on screen was made from another prompt or other ablated heads (a new one is
        running, or the settings changed since)."""
        return self.generation is not None and self._made_with != (self.prompt, tuple(tuple(p) for p in self.ablated))

    def stop_work(self) -> None:
        if self.language_model is not None:
            self.language_model.stop()
        super().stop_work()

    def select_head(self, layer: int, head: int, on_probe: bool | None = None) -> None:
        """Open a head; ``on_probe`` True shows it on the induction probe it was scored on, False on your text."""
        self.update(layer=layer, head=head, **({} if on_probe is None else {"on_probe": bool(on_probe)}))

    def select_token(self, index: int | None) -> None:
        self.update(token=-1 if index is None else whole(index, "token", -1))

    def zoom_to(self, token: int | None, window: int) -> None:
        """Show the ``window`` tokens around ``token`` whole (``None``: the whole text again, pooled)."""
        if token is not None:  # checked before missing maps end the call: nan is refused either way
            token, window = whole(token, "token", 0), whole(window, "zoom window", 1)
        maps = self.maps()
        if token is None or maps is None:
            return self.update(zoom=-1)
        n = len(maps.tokens)
        self.update(zoom=max(0, min(token - window // 2, n - window)))

    def toggle_ablation(self) -> None:
        pairs = {tuple(p) for p in self.ablated} ^ {(self.layer, self.head)}
        self.update(ablated=[list(p) for p in sorted(pairs)])

    def maps(self):
        """The maps on screen: the induction probe's with ``on_probe`` (once found), else the last generation's."""
        if self.on_probe:
            return None if self.probe is None else self.probe["maps"]
        return None if self.generation is None else self.generation.maps

    def faithful_inputs(self) -> CheckInput:
        """What the faithfulness check reads: the last generation up to the picked position (its next token's
        log-probability), and the attention of the layer on screen."""
        if self.language_model is None or self.generation is None:
            raise ValueError("Press Generate first: the check measures the model's next token at a position.")
        return CheckInput(self.language_model, tuple(self.generation.ids), self.token, self.layer)

    def candidates(self) -> tuple:
        """The picked position's top-5 next tokens with probabilities, in the maps on screen."""
        maps = self.maps()
        if maps is None or not maps.meta.next_tokens:
            return ()
        return maps.meta.next_tokens[self.token]


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


class _Progress:
    """A worker's ``progress(done, total)`` for one phase of a read: the session's progress and status follow it on
    the home thread, a few times a second, with the time left at the pace so far."""

    def __init__(self, session: LanguageSession, what: str):
        self.session, self.what, self.first, self.over = session, what, None, False
        self.show = Throttle(session.home, self._show, 0.3)

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self.first is None:  # the pace is timed from the first layer done
            self.first = (done, now)
        pace = (now - self.first[1]) / (done - self.first[0]) if done > self.first[0] else None
        self.show(done, total, None if pace is None else pace * (total - done))

    def _show(self, done: int, total: int, left: float) -> None:
        session = self.session
        if session.busy and not self.over:  # a report that arrives after the work ended says nothing
            session.progress = done / total
            left = "" if left is None else f", about {_duration(left)} left"
            session.say(f"{self.what}: layer {done} of {total}{left}. Stop keeps the previous view.", "busy")
