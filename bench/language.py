"""Language model tab against bertviz, on SmolLM2-135M: load times, and time and bytes of a head switch.

Run: ``python bench/language.py``. Everything runs in this one process:

- ``load_cold_s``: ``language.load()`` into an empty cache (the GGUF is converted once, in its own process);
  ``load_warm_s``: the next load, from the cached safetensors folder.
- At 128, 256, 512 and 2,048 tokens (random words cut to exactly that many tokens):
  - ``forward_ms``: one pass of the model over the text with its maps (``attend``: SDPA, each layer read by
    ``capture_attention``), the floor of a new text; ``eager_forward_ms``, timed in turn with it, the reader
    before: eager attention with ``output_attentions`` (past 256 MB of maps, without them, as the old long path
    ran), and ``forward_over_eager_forward`` their ratio;
  - ``head_switch_ms`` / ``head_switch_bytes``: the Language model panel drawing another head of the same layer
    (the model does not run again); ``layer_switch_ms`` / ``layer_switch_bytes``: another layer. A long text's
    head is worked out from that layer's kept queries and keys, pooled. Bytes are every widget message the kernel sends for
    the switch (JSON plus binary buffers, caught at ``comm.create_comm`` as in ``bench/pretrained.py``).
- ``bertviz_ms`` / ``bertviz_bytes`` at 128 and 256 tokens: ``bertviz.head_view(..., html_action="return")`` on
  the same model's 30 x 9 attentions and the size of the HTML it returns; bertviz sends all heads at once, so
  a head switch in its page costs nothing more, and this is the cost of showing any head.
- ``--kernels N``: memory for a class instead. N fresh Python processes each load the model from the cache and
  run one prompt; N others import the explorer and transformers' model classes (as
  every dashboard kernel does) and run nothing. ``pss_per_kernel_mb`` is each group's mean
  proportional set size (``/proc/PID/smaps_rollup``: shared pages count 1/N to each), and
  ``model_pss_per_kernel_mb`` their difference, what one more student with the model loaded costs.
Medians of several repetitions; the ratios come from the medians of this run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import comm
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.pretrained import SENT, WORDS, RecordingComm, eager, median_ms  # noqa: E402

SIZES = (128, 256, 512, 2048)
BERTVIZ_SIZES = (128, 256)


def text_of(model, n_tokens: int) -> str:
    """Random words whose tokens, cut to ``n_tokens``, decode back to a text of exactly that many tokens."""
    import random

    generator = random.Random(n_tokens)
    words = " ".join(generator.choice(WORDS) for _ in range(n_tokens))
    ids = model.tokenizer(words, add_special_tokens=False)["input_ids"][:n_tokens]
    text = model.tokenizer.decode(ids)
    assert len(model.encode(text)[0]) == n_tokens
    return text


def timed(action) -> tuple[float, int]:
    SENT.clear()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start, sum(SENT)


def switches(panel, repeats: int) -> dict:
    """Head and layer switches of the panel on its last generation, each drawn at once (no throttle wait)."""
    session = panel.session
    heads, layers = [], []
    for i in range(repeats):
        heads.append(timed(lambda: (session.update(head=(session.head + 1) % 9), panel.redraw_soon.flush())))
        layers.append(timed(lambda: (session.update(layer=(session.layer + 7) % 30), panel.redraw_soon.flush())))
    assert panel.status.kind == "ok", panel.status.text
    return dict(head_switch_ms=median_ms([t for t, _ in heads]), head_switch_bytes=statistics.median(b for _, b in heads),
                layer_switch_ms=median_ms([t for t, _ in layers]),
                layer_switch_bytes=statistics.median(b for _, b in layers))


def bertviz(model, text: str) -> dict:
    from bertviz import head_view

    ids, _ = model.encode(text)
    with eager(model.model), torch.inference_mode():
        attentions = model.model(torch.tensor([ids]), output_attentions=True).attentions
    start = time.perf_counter()
    page = head_view(attentions, model.token_labels(ids), html_action="return").data
    return dict(bertviz_ms=1000 * (time.perf_counter() - start), bertviz_bytes=len(page.encode()))


def bench_size(model, panel, n_tokens: int, repeats: int) -> dict:
    text = text_of(model, n_tokens)
    forward, before = [], []
    ids = torch.tensor([model.encode(text)[0]])
    for _ in range(3 if n_tokens >= 2048 else 5):  # in turn, so a busy neighbour slows both alike
        with eager(model.model), torch.inference_mode():  # the reader before: eager attention, all maps if they fit
            start = time.perf_counter()
            model.model(ids, output_attentions=not model.is_long(n_tokens), use_cache=False)
            before.append(time.perf_counter() - start)
        start = time.perf_counter()
        model.attend(text)  # the reader now: SDPA, queries and keys captured
        forward.append(time.perf_counter() - start)
    session = panel.session
    session.update(prompt=text, max_new_tokens=1, layer=0, head=0, view="head")
    session.generate()
    panel.wait(600)
    assert panel.status.kind == "ok", panel.status.text
    result = dict(forward_ms=median_ms(forward), eager_forward_ms=median_ms(before), **switches(panel, repeats))
    if n_tokens in BERTVIZ_SIZES:
        result.update(bertviz(model, text))
    return result


def report(n_tokens: int, result: dict) -> None:
    for name, value in result.items():
        print(f"tokens_{n_tokens}_{name}: {value:.1f}" if name.endswith("ms") else f"tokens_{n_tokens}_{name}: {int(value)}")
    if "bertviz_ms" in result:
        print(f"tokens_{n_tokens}_head_switch_speedup_vs_bertviz: {result['bertviz_ms'] / result['head_switch_ms']:.1f}")
        print(f"tokens_{n_tokens}_head_switch_bytes_ratio_vs_bertviz: "
              f"{result['bertviz_bytes'] / max(result['head_switch_bytes'], 1):.1f}")
    print(f"tokens_{n_tokens}_forward_over_eager_forward: {result['forward_ms'] / result['eager_forward_ms']:.2f}")
    print(f"tokens_{n_tokens}_head_switch_over_forward: {result['head_switch_ms'] / result['forward_ms']:.3f}",
          flush=True)


KERNEL = """
import sys, time
import explorer.models.language as language
from transformers import AutoModelForCausalLM, AutoTokenizer  # a dashboard kernel imports these anyway
if sys.argv[1] == "model":
    language.load().attend("The capital of France is")
print("ready", flush=True)
time.sleep(600)
"""


def pss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no Pss line")


def class_memory(n_kernels: int) -> None:
    """Mean PSS of ``n_kernels`` processes with the model against as many without it (see the docstring)."""
    import subprocess

    from explorer.models import language

    language.load()  # the cache exists before the kernels start
    groups = {}
    for kind in ("bare", "model"):
        processes = [subprocess.Popen([sys.executable, "-c", KERNEL, kind], stdout=subprocess.PIPE, text=True)
                     for _ in range(n_kernels)]
        try:
            for process in processes:
                assert process.stdout.readline().strip() == "ready"
            groups[kind] = statistics.mean(pss_mb(process.pid) for process in processes)
        finally:
            for process in processes:
                process.kill()
                process.wait()
        print(f"kernels_{n_kernels}_{kind}_pss_per_kernel_mb: {groups[kind]:.0f}", flush=True)
    print(f"kernels_{n_kernels}_model_pss_per_kernel_mb: {groups['model'] - groups['bare']:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES), help="token counts (default: all)")
    parser.add_argument("--kernels", type=int, default=0, help="measure memory of N kernels instead")
    args = parser.parse_args()
    if args.kernels:
        return class_memory(args.kernels)
    comm.create_comm = RecordingComm
    from explorer.models import language
    from explorer.sessions.language import LanguageSession
    from explorer.widgets.language import LanguagePanel

    with tempfile.TemporaryDirectory() as cache:
        os.environ["AE_CACHE"] = cache
        start = time.perf_counter()
        language.load()
        print(f"load_cold_s: {time.perf_counter() - start:.1f}", flush=True)
        start = time.perf_counter()
        model = language.load()
        print(f"load_warm_s: {time.perf_counter() - start:.1f}", flush=True)
        print(f"torch_threads: {torch.get_num_threads()}")
        panel = LanguagePanel(LanguageSession(language_model=model))
        panel.wait(120)
        for n_tokens in args.sizes:
            report(n_tokens, bench_size(model, panel, n_tokens, repeats=5))


if __name__ == "__main__":
    main()
