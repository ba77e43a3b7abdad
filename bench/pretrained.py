"""Pretrained tab against bertviz: time and bytes of one on-screen update, at 16, 64, 128 and 256 tokens.

Run: ``python bench/pretrained.py``. Everything runs in this one process on the same inputs:

- ``forward_ms``: the bare forward pass of all-MiniLM-L6-v2 in eager attention with ``output_attentions`` (what
  bertviz needs, and how this tab read the model before it ran SDPA); ``sdpa_read_ms``: the same model in SDPA
  with every layer's weights read by ``capture_attention`` (how the tab reads it now), timed in turn with it;
  ``sdpa_read_over_eager_forward`` their ratio.
- ``update_ms``: one on-screen update of the Pretrained panel for a new text: tokenising, the forward pass,
  rollout and entropy, building what is on screen (one head of one layer and the entropy map, canvas maps
  whose matrices travel as float32 buffers; the token bars only once a token is picked, and none is here)
  and updating the widgets in place. The text is read in the tab's worker and drawn on this thread, as in
  a kernel, so the hand-over between them is counted too. The encoder's cache is cleared and every repetition uses a different text, so nothing is reused.
- ``update_bytes``: what the kernel sends to the browser for that update. Every widget message is caught
  by replacing ``comm.create_comm`` with a comm that records the JSON size of each message plus its binary
  buffers (what ipykernel would put on the websocket, without the Jupyter envelope).
- ``bertviz_ms`` / ``bertviz_bytes``: ``bertviz.head_view(..., html_action="return")`` on the same attentions
  and the size of the HTML it returns (which the notebook then sends to the browser), not counting the
  forward pass that produced them.
Medians of several repetitions; ratios are computed from the medians of this run.
``--threads N`` sets torch's threads for everything (default 1; 0 keeps torch's own choice). One thread is
the conservative default: it slows our forward pass on an idle machine, never bertviz (plain Python), and
on a busy shared machine torch's one-thread-per-core default oversubscribes and swings timings tenfold.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

import comm
import torch
from comm.base_comm import BaseComm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SIZES = (16, 64, 128, 256)
WORDS = ("river", "stone", "quiet", "green", "light", "house", "music", "paper", "water", "night", "small", "world")
SENT: list[int] = []


class RecordingComm(BaseComm):
    """A comm that records the size of every message a widget sends instead of sending it."""

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        SENT.append(len(json.dumps(data, default=str).encode()) + sum(memoryview(b).nbytes for b in buffers or ()))


def text_of(n_tokens: int, variant: int) -> str:
    """A text of exactly ``n_tokens`` tokens with [CLS] and [SEP]; each variant differs in every word."""
    return " ".join(WORDS[(i + variant) % len(WORDS)] for i in range(n_tokens - 2))


def median_ms(samples) -> float:
    return 1000 * statistics.median(samples)


@contextlib.contextmanager
def eager(model):
    """The model in eager attention for a while (the explorer loads SDPA)."""
    model.set_attn_implementation("eager")
    try:
        yield model
    finally:
        model.set_attn_implementation("sdpa")


def bench_size(encoder, panel, n_tokens: int, repeats: int, bertviz_repeats: int) -> dict:
    from bertviz import head_view

    from explorer.models import hf

    forward, read, update, sent, bertviz_time, bertviz_size = [], [], [], [], [], []
    for variant in range(repeats):
        inputs = encoder.tokenizer(text_of(n_tokens, variant), return_tensors="pt")
        assert inputs["input_ids"].shape[1] == n_tokens
        with eager(encoder.model), torch.inference_mode():  # the reader before: eager attention
            start = time.perf_counter()
            output = encoder.model(**inputs, output_attentions=True)
            forward.append(time.perf_counter() - start)
        start = time.perf_counter()
        with torch.inference_mode():  # the reader now: SDPA, weights read at each call
            hf.attention_calls(encoder.model, **inputs)
        read.append(time.perf_counter() - start)

        encoder.clear_cache()
        SENT.clear()
        start = time.perf_counter()
        panel.session.update(text_a=text_of(n_tokens, variant + 100))  # read in the worker, drawn here
        assert panel.session.wait(120)
        update.append(time.perf_counter() - start)
        sent.append(sum(SENT))
        assert panel.status.kind == "ok", panel.status.text

        if variant < bertviz_repeats:
            tokens = encoder.tokenizer.convert_ids_to_tokens(inputs["input_ids"][0])
            start = time.perf_counter()
            page = head_view(output.attentions, tokens, html_action="return").data
            bertviz_time.append(time.perf_counter() - start)
            bertviz_size.append(len(page.encode()))
    return dict(forward_ms=median_ms(forward), sdpa_read_ms=median_ms(read), update_ms=median_ms(update),
                update_bytes=statistics.median(sent),
                bertviz_ms=median_ms(bertviz_time), bertviz_bytes=statistics.median(bertviz_size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1; 0: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch_threads: {torch.get_num_threads()}")
    comm.create_comm = RecordingComm
    from explorer.models.pretrained import load
    from explorer.sessions.pretrained import PretrainedSession
    from explorer.widgets.pretrained import PretrainedPanel

    torch.manual_seed(0)
    encoder = load()
    panel = PretrainedPanel(PretrainedSession(encoder=encoder))  # draws once: later updates are in place
    panel.session.wait(120)
    for n_tokens in SIZES:
        result = bench_size(encoder, panel, n_tokens, repeats=7, bertviz_repeats=1 if n_tokens >= 256 else 3)
        for name, value in result.items():
            print(f"tokens_{n_tokens}_{name}: {value:.1f}" if name.endswith("ms") else
                  f"tokens_{n_tokens}_{name}: {int(value)}")
        print(f"tokens_{n_tokens}_speedup_vs_bertviz: {result['bertviz_ms'] / result['update_ms']:.1f}")
        print(f"tokens_{n_tokens}_bytes_ratio_vs_bertviz: {result['bertviz_bytes'] / result['update_bytes']:.1f}")
        print(f"tokens_{n_tokens}_update_over_forward: {result['update_ms'] / result['forward_ms']:.2f}")
        print(f"tokens_{n_tokens}_sdpa_read_over_eager_forward: {result['sdpa_read_ms'] / result['forward_ms']:.2f}",
              flush=True)


if __name__ == "__main__":
    main()
