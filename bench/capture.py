"""What reading attention costs, as ratios against references measured in the same run.

    python bench/capture.py [--tokens 128,512,2048,8192] [--rounds 3]

Prints ``name: value`` lines:
- SmolLM2 (SDPA mode) at each length: a plain forward, the same forward inside ``capture_attention`` (every
  layer's maps kept, or with ``lazy=True`` only queries and keys), and the eager ``output_attentions`` forward that
  bertviz and most tools need; the ratios to the plain forward (goal: all layers captured at 512 tokens <= 1.3x).
  Past 2,048 tokens eager is not run: the bytes its maps would need are printed instead.
- at the longest length, the time to work one head's whole map out of the kept queries and keys, and a layer's,
  and the process's peak memory (goal <= 4 GB);
- the training step of TinyTransformer (SDPA inside) against an equal model built from ``nn.TransformerEncoder``,
  interleaved, with the same optimizer, and with the Trainer's own step (goal >= 1.3x).
"""

from __future__ import annotations

import argparse
import resource
import statistics
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
    """SmolLM2 from the explorer's converted cache, in SDPA mode (the default of transformers)."""
    from explorer.models import hf, language

    language.load()  # converts the packaged GGUF file once, if the cache is missing
    AutoModelForCausalLM, AutoTokenizer = hf.names("AutoModelForCausalLM", "AutoTokenizer")
    folder = language.converted_dir()
    with hf.loading():
        model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="sdpa", local_files_only=True)
    return model.eval(), AutoTokenizer.from_pretrained(folder)


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


def long_maps(model, tokenizer, length: int) -> None:
    """One head's and one layer's map worked out from the kept queries and keys of a long text."""
    x = tokenizer(TEXT, return_tensors="pt").input_ids[:, :length]
    with torch.inference_mode(), capture_attention(model, lazy=True) as calls:
        model(x, use_cache=False)
    kept = sum((c.query.numel() + c.key.numel()) * c.query.element_size() for c in calls.calls)
    print(f"lazy_kept_mb_{length}: {kept / 1e6:.0f}")
    call = calls.calls[len(calls) // 2]
    block = 512

    def one_head(head=0):
        for start in range(0, length, block):  # in row blocks, as a pooled view works it out
            call.rows(0, [head], slice(start, start + block))

    print(f"lazy_head_map_s_{length}: {seconds(one_head, 1):.3f}")
    print(f"lazy_layer_map_s_{length}: {seconds(lambda: [one_head(h) for h in range(call.shape[1])], 1):.3f}")
    print(f"peak_memory_gb: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f}  (goal <= 4)")


def training_step(rounds: int = 5) -> None:
    """Interleaved rounds (a busy neighbour slows both alike), one intra-op thread, CPU time."""
    import training as reference_bench  # bench/training.py: the nn.TransformerEncoder of the same sizes
    from explorer.models.transformer import TinyTransformer, TransformerConfig
    from explorer.training import one_thread

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
    options = parser.parse_args()
    lengths = [int(t) for t in options.tokens.split(",")]
    training_step()
    model, tokenizer = load_sdpa_smollm()
    forward_costs(model, tokenizer, lengths, options.rounds)
    long_maps(model, tokenizer, max(lengths))


if __name__ == "__main__":
    main()
