"""What reading attention costs, as ratios against references measured in the same run.

    python bench/capture.py [--tokens 128,512,2048,8192] [--rounds 3]

Prints ``name: value`` lines:
- SmolLM2 (SDPA mode) at each length: a plain forward, the same forward inside ``capture_attention`` (every
  layer's maps kept, or with ``lazy=True`` only queries and keys), and the eager ``output_attentions`` forward that
  bertviz and most tools need; the ratios to the plain forward (goal: all layers captured at 512 tokens <= 1.3x).
  Past 2,048 tokens eager is not run: the bytes its maps would need are printed instead.
- at the longest length, the Language model tab's own path, in a fresh process: one generation (the read with
  its per-layer progress, one new token, the head finder's scores), the time it announced before starting against
  the read's, a head switch and a layer switch drawn in the panel (kernel time and bytes sent; goals <= 300 ms
  and <= 1 MB, and <= 2 s), the queries and keys kept, and the process's peak memory (goal <= 4 GB);
- the training step of TinyTransformer (SDPA inside) against an equal model built from ``nn.TransformerEncoder``,
  interleaved, with the same optimizer, and with the Trainer's own step (goal >= 1.3x).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from explorer.capture import capture_attention  # noqa: E402

TEXT = ("The explorer reads attention from any model. " * 4000)


def load_sdpa_smollm():
    """SmolLM2 as the explorer loads it, in SDPA mode (the default of transformers), and its tokenizer."""
    from explorer.models import language

    model = language.load()  # converts the packaged GGUF file once, if the cache is missing
    return model.model, model.tokenizer


def seconds(run, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def forward_costs(model, tokenizer, lengths, rounds: int) -> None:
    ids = tokenizer(TEXT, return_tensors="pt").input_ids
    config = model.config
    for length in lengths:
        x = ids[:, :length]
        n = 1 if length > 2048 else rounds

        def plain():
            with torch.inference_mode():
                model(x, use_cache=False)

        def captured(lazy):
            def run():
                with torch.inference_mode(), capture_attention(model, lazy=lazy) as calls:
                    model(x, use_cache=False)
                assert len(calls) == config.num_hidden_layers
                return calls
            return run

        base = seconds(plain, n)
        print(f"sdpa_forward_s_{length}: {base:.3f}")
        maps_bytes = config.num_hidden_layers * config.num_attention_heads * length * length * 4
        if maps_bytes <= 2_000_000_000:
            kept = seconds(captured(False), n)
            print(f"capture_all_layers_s_{length}: {kept:.3f}")
            print(f"capture_all_layers_ratio_{length}: {kept / base:.2f}" + ("  (goal <= 1.3)" if length == 512 else ""))
        lazy = seconds(captured(True), n)
        print(f"capture_lazy_s_{length}: {lazy:.3f}")
        print(f"capture_lazy_ratio_{length}: {lazy / base:.2f}")
        if length <= 2048:
            model.set_attn_implementation("eager")

            def eager():
                with torch.inference_mode():
                    model(x, use_cache=False, output_attentions=True)
            try:
                slow = seconds(eager, n)
            finally:
                model.set_attn_implementation("sdpa")
            print(f"eager_output_attentions_s_{length}: {slow:.3f}")
            print(f"eager_output_attentions_ratio_{length}: {slow / base:.2f}")
        else:
            print(f"eager_output_attentions_bytes_{length}: {maps_bytes / 1e9:.1f} GB (not run)")


def tab_at_length(length: int, repeats: int = 5) -> None:
    """The Language model tab itself with a prompt of ``length - 1`` tokens and one new token (``length`` in all):
    run by ``main`` in a fresh process, so the peak memory printed is the tab's own."""
    import comm

    from bench.language import switches, text_of
    from bench.pretrained import RecordingComm

    comm.create_comm = RecordingComm  # every widget message is counted, not sent
    from explorer.models import language
    from explorer.sessions.language import LanguageSession
    from explorer.widgets.language import LanguagePanel

    model = language.load()
    model.time_a_pass()  # what the tab does after loading, so it can say how long a long read takes
    panel = LanguagePanel(LanguageSession(language_model=model))
    session = panel.session
    session.update(prompt=text_of(model, length - 1), max_new_tokens=1, layer=0, head=0, view="head")
    estimate = model.estimate_seconds(length - 1)
    wall, cpu = time.perf_counter(), time.process_time()
    session.generate()
    panel.wait(4 * 3600)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert panel.status.kind == "ok", panel.status.text
    read = model.estimate_seconds(length - 1)  # the rate measured on this very read
    print(f"tab_generate_s_{length}: {wall:.1f}  (read, one new token, head finder scores, first map)")
    print(f"tab_generate_cpu_s_{length}: {cpu:.1f}")
    print(f"tab_read_s_{length}: {read:.1f}")
    print(f"tab_estimate_before_over_read_{length}: {estimate / read:.2f}  (the time the tab announced, over the read's)")
    result = switches(panel, repeats)
    print(f"tab_head_switch_ms_{length}: {result['head_switch_ms']:.0f}  (goal <= 300)")
    print(f"tab_head_switch_bytes_{length}: {int(result['head_switch_bytes'])}  (goal <= 1000000)")
    print(f"tab_layer_switch_ms_{length}: {result['layer_switch_ms']:.0f}  (goal <= 2000)")
    print(f"tab_head_switch_over_read_{length}: {result['head_switch_ms'] / 1000 / read:.4f}")
    maps = session.maps()
    kept = sum((c.query.numel() + c.key.numel()) * c.query.element_size() for c in maps.calls)
    print(f"tab_kept_queries_keys_mb_{length}: {kept / 1e6:.0f}")
    print(f"tab_peak_memory_gb_{length}: {peak_memory_gb():.2f}  (goal <= 4)")


def peak_memory_gb() -> float:
    """This process's peak resident memory: VmHWM belongs to the address space, which exec makes anew. (getrusage's
    ru_maxrss survives fork and exec, so in the tab's process it would report the parent's eager forwards.)"""
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1e6


def training_step(rounds: int = 5) -> None:
    """Interleaved rounds (a busy neighbour slows both alike), one intra-op thread, CPU time."""
    import training as reference_bench  # bench/training.py: the nn.TransformerEncoder of the same sizes
    from explorer.models.transformer import TinyTransformer, TransformerConfig
    from explorer.threads import one_thread

    generator = torch.Generator().manual_seed(0)
    batches = [(x, x.flip(1)) for x in torch.randint(0, 10, (8, 64, 10), generator=generator)]
    torch.manual_seed(0)
    ours = TinyTransformer(TransformerConfig(vocab_size=10, d_model=64, n_heads=4, n_layers=2))
    reference = reference_bench.TorchEncoder()
    rates = {"ours": [], "reference": []}
    with one_thread():
        for _ in range(rounds):
            rates["ours"].append(reference_bench.steps_per_second(ours, batches)[1])
            rates["reference"].append(reference_bench.steps_per_second(reference, batches)[1])
    ratios = [a / b for a, b in zip(rates["ours"], rates["reference"])]
    print(f"train_steps_per_cpu_s_tiny_transformer: {statistics.median(rates['ours']):.1f}")
    print(f"train_steps_per_cpu_s_torch_encoder: {statistics.median(rates['reference']):.1f}")
    print(f"train_step_ratio_vs_torch_encoder: {statistics.median(ratios):.2f}  (goal >= 1.3)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", default="128,512,2048,8192")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tab", type=int, default=0, help="only the tab at this many tokens (in this process)")
    options = parser.parse_args()
    if options.tab:
        return tab_at_length(options.tab)
    lengths = [int(t) for t in options.tokens.split(",")]
    training_step()
    model, tokenizer = load_sdpa_smollm()
    forward_costs(model, tokenizer, lengths, options.rounds)
    del model
    sys.stdout.flush()
    subprocess.run([sys.executable, __file__, "--tab", str(max(lengths))], check=True)


if __name__ == "__main__":
    main()
