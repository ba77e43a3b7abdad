"""Long texts: lazily captured queries and keys give maps equal to transformers' eager output_attentions, worked out
only where they are looked at; Stop and failures leave nothing behind; too long a text is cut with a notice."""

import threading

import pytest
import torch

from explorer import heads
from explorer.capture import AttentionCall
from explorer.lazy_maps import LazyAttentionMaps
from explorer.maps import AttentionMaps, MapsInfo
from explorer.models import language
from explorer.models.reading import Stopped, joined
from explorer.views.export import export_scope
from tests.conftest import eager_attentions, save_tiny_gpt2

TEXT = "the cat sat on the mat and looked at the dog " * 4


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory):
    return save_tiny_gpt2(tmp_path_factory.mktemp("gpt2-long"), n_layer=3, n_positions=256)


@pytest.fixture
def long_model(tiny_gpt2):
    model = language.load(tiny_gpt2)
    model.full_maps_bytes = 0  # every text counts as long
    return model


def no_capture_left(model) -> bool:
    """No torch function mode is active and no module of ``model`` has a hook left."""
    modules = list(model.modules())
    return (not torch._C._is_torch_function_mode_enabled()
            and not any(m._forward_hooks or m._forward_pre_hooks for m in modules))


def test_lazy_maps_equal_eager_output_attentions_on_gpt2(long_model):
    maps = long_model.attend(TEXT)
    ids, _ = long_model.encode(TEXT)
    expected = eager_attentions(long_model.model, ids)
    assert isinstance(maps, LazyAttentionMaps) and isinstance(maps, AttentionMaps)
    for layer in range(3):
        assert torch.allclose(maps.layer(layer), expected[layer], atol=1e-6)
        assert torch.allclose(maps.rows(layer, [1, 3], slice(7, 30)), expected[layer, [1, 3], 7:30], atol=1e-6)
    whole = AttentionMaps(tokens=maps.tokens, weights=expected)
    for score in (heads.previous_token_score, heads.first_token_score, heads.self_score, heads.entropy_score):
        assert torch.allclose(score(maps), score(whole), atol=1e-5)
    assert torch.allclose(maps.pooled_head(2, 1, 10)[0], whole.pooled_head(2, 1, 10)[0], atol=1e-6)
    short = language.load(long_model.model.name_or_path).attend(TEXT)
    assert maps.meta.next_tokens == short.meta.next_tokens and type(short) is AttentionMaps


def test_a_long_generation_reads_the_text_its_steps_wrote(long_model):
    generation = long_model.generate("the cat sat", max_new_tokens=6)
    assert isinstance(generation.maps, LazyAttentionMaps) and sum(generation.generated) == 6
    expected = eager_attentions(long_model.model, generation.ids)  # one eager pass over the whole text
    assert max(float((generation.maps.layer(l) - expected[l]).abs().max()) for l in range(3)) < 1e-5
    assert len(generation.maps.meta.next_tokens) == len(generation.ids)


def test_only_what_is_looked_at_is_worked_out(long_model):
    maps = long_model.attend(TEXT)
    maps.head(0, 0), maps.pooled_head(1, 2, 8), maps.rows(2, [0], slice(0, 4)), heads.entropy_score(maps)
    assert maps.computed == 2  # the head and the pooled map; no whole layer was made for any of those
    with pytest.raises(ValueError, match="not kept whole"):
        maps.weights
    maps.layer(1), maps.mean_over_heads(1), maps.head(1, 0), maps.head(0, 0)
    assert maps.computed == 3  # layer 1 once; its head and the kept head 0 cost nothing
    with pytest.raises(ValueError, match="Layer 3 does not exist"):
        maps.layer(3)


def test_ablation_reaches_the_lazy_maps(long_model):
    base, ablated = long_model.attend(TEXT), long_model.attend(TEXT, ablate=[(0, 1)])
    assert torch.equal(base.layer(0), ablated.layer(0))
    assert not torch.allclose(base.layer(1), ablated.layer(1))
    assert no_capture_left(long_model.model)


def test_an_export_of_long_maps_is_one_layer_and_a_huge_layer_is_refused(long_model):
    maps = long_model.attend(TEXT)
    one, description = export_scope(maps, 2, limit=10)
    assert one.n_layers == 1 and one.meta.layer_offset == 2 and "layer 2 only" in description
    assert torch.equal(one.weights[0], maps.layer(2))
    big = LazyAttentionMaps([str(i) for i in range(3000)], [_call(3000, 9)] * 2)
    with pytest.raises(ValueError, match="too many to download"):
        export_scope(big, 1)


def test_statistics_in_one_fused_call_equal_the_blockwise_ones():
    masked = _call(70, 4, mask=torch.rand(1, 1, 70, 70) > 0.2, causal=False)
    for call in (_call(70, 4), _call(70, 4, causal=False), masked):
        maps = LazyAttentionMaps([str(i) for i in range(70)], [call])
        fused, blocks = maps.statistics(0), maps._statistics_in_blocks(0)
        whole = AttentionMaps(tokens=maps.tokens, weights=call.rows(0)[None])
        assert torch.allclose(fused[1], blocks[1], atol=1e-5) and torch.allclose(fused[1], whole.row_entropy(0), atol=1e-5)
        queries = torch.arange(70)
        assert torch.allclose(maps.pairs(0, queries, queries // 2), whole.pairs(0, queries, queries // 2), atol=1e-6)


def test_joined_steps_with_masks_equal_one_masked_pass():
    """A prompt given as an explicit causal mask, then two one-row steps with masks: the joined call's rows are the
    weights of one causal pass over all queries and the last keys."""
    torch.manual_seed(0)
    query, key = torch.randn(1, 2, 6, 8), torch.randn(1, 1, 6, 8)
    prompt = AttentionCall("a", (1, 2, 4, 4), query=query[:, :, :4], key=key[:, :, :4],
                           mask=torch.ones(4, 4, dtype=torch.bool).tril(), scale=0.3)
    steps = [AttentionCall("a", (1, 2, 1, n), query=query[:, :, n - 1:n], key=key[:, :, :n],
                           mask=torch.zeros(1, 1, 1, n), scale=0.3) for n in (5, 6)]
    whole = AttentionCall("a", (1, 2, 6, 6), query=query, key=key, causal=True, scale=0.3)
    assert torch.allclose(joined(prompt, steps).rows(0), whole.rows(0), atol=1e-6)


def test_stop_during_a_long_read_raises_and_leaves_no_capture(long_model):
    layers_seen = []

    def press_stop(done, total):
        layers_seen.append(done)
        long_model.stop()

    with pytest.raises(Stopped, match="previous view is kept"):
        long_model.attend(TEXT, progress=press_stop)
    assert layers_seen == [1] and no_capture_left(long_model.model)
    assert long_model.attend(TEXT).n_layers == 3  # the next read runs whole


def test_a_forward_that_raises_leaves_no_capture_and_the_session_keeps_its_view(long_model):
    from explorer.sessions.language import LanguageSession

    session = LanguageSession(language_model=long_model, prompt=TEXT, max_new_tokens=2)
    session.generate()
    assert session.wait() and session.generation is not None
    before = session.generation

    def broken(module, args):
        raise RuntimeError("a layer failed")

    hook = long_model.model.transformer.h[1].register_forward_pre_hook(broken)
    try:
        session.update(prompt="another text for the model")
        session.generate()
        assert session.wait()
    finally:
        hook.remove()
    assert session.generation is before and session.status_kind == "error"
    assert no_capture_left(long_model.model)


def test_stop_in_the_tab_keeps_the_previous_view(long_model):
    from explorer.sessions.language import LanguageSession

    session = LanguageSession(language_model=long_model, prompt=TEXT, max_new_tokens=2)
    session.generate()
    assert session.wait()
    before, reading = session.generation, threading.Event()
    original = long_model.read_tokens

    def slow_read(*args, **kwargs):  # Stop is pressed (on the kernel's thread) while the prompt is being read
        reading.set()
        session.home.call(session.stop_work)
        assert long_model.stop_flag.wait(30)
        return original(*args, **kwargs)

    long_model.read_tokens = slow_read
    try:
        session.update(prompt="the dog sat on the cat " * 5)
        session.generate()
        assert session.wait()
    finally:
        del long_model.read_tokens
    assert reading.is_set() and session.generation is before
    assert "Stopped" in session.status and "previous view" in session.status


def test_a_text_longer_than_the_context_is_cut_with_a_notice(long_model):
    maps = long_model.attend("word " * 20_000)
    assert len(maps.tokens) == 256 and maps.meta.full_length == 20_000
    assert "20000 tokens long" in maps.meta.notice and "cut to 256" in maps.meta.notice


def test_an_eager_only_family_is_read_through_output_attentions(tmp_path):
    from transformers import AutoTokenizer, GPTNeoConfig, GPTNeoForCausalLM

    from explorer.models import pretrained

    tokenizer = AutoTokenizer.from_pretrained(pretrained.default_model_dir())
    torch.manual_seed(0)
    config = GPTNeoConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_layers=2, num_heads=4,
                          attention_types=[[["global"], 2]], max_position_embeddings=512)
    GPTNeoForCausalLM(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    model = language.load(tmp_path)
    assert model.eager
    ids, _ = model.encode(TEXT)
    assert torch.allclose(model.attend(TEXT).weights, eager_attentions(model.model, ids), atol=1e-6)
    model.full_maps_bytes = 10_000
    with pytest.raises(ValueError, match="no SDPA attention.*Shorten it"):
        model.attend(TEXT)


def test_smollm_reads_2048_tokens_keeping_queries_and_keys_only(smollm):
    import random

    random.seed(0)
    words = [random.choice(["cat", "dog", "river", "stone", "blue", "runs", "the", "a", "of"]) for _ in range(3000)]
    maps = smollm.attend(" ".join(words), max_tokens=2048)
    assert isinstance(maps, LazyAttentionMaps) and len(maps.tokens) == 2048
    weights = maps.layer(18)
    assert weights.shape == (9, 2048, 2048)
    assert torch.allclose(weights.sum(-1), torch.ones(9, 2048), atol=1e-4)
    assert torch.triu(weights, diagonal=1).abs().max() == 0
    kept = sum((call.query.numel() + call.key.numel()) * call.query.element_size() for call in maps.calls)
    assert kept < 200e6  # 30 layers of queries and keys; all maps would be 4.5 GB


def test_smollm_lazy_maps_equal_eager_output_attentions(smollm):
    text = "The capital of France is Paris, and the capital of Italy is Rome."
    budget, smollm.full_maps_bytes = smollm.full_maps_bytes, 0
    try:
        maps = smollm.attend(text)
    finally:
        smollm.full_maps_bytes = budget
    expected = eager_attentions(smollm.model, smollm.encode(text)[0])
    for layer in (0, 18, 29):  # grouped-query heads: three query heads share each key head
        assert torch.allclose(maps.layer(layer), expected[layer], atol=1e-5)
    whole = AttentionMaps(tokens=maps.tokens, weights=expected)
    assert torch.allclose(heads.entropy_score(maps), heads.entropy_score(whole), atol=1e-4)


def test_smollm_cuts_20000_tokens_to_its_context_and_says_so_before_reading(smollm):
    from explorer.sessions.language import LanguageSession

    text = " ".join(["word"] * 20_000)
    ids, full_length = smollm.encode(text, smollm.max_tokens - 1)  # generate leaves room for one new token
    assert (len(ids), full_length, smollm.max_tokens) == (8191, 20_000, 8192)
    smollm.time_a_pass(64)
    message = LanguageSession._start_message(smollm, len(ids), full_length)
    assert "20,000 tokens" in message and "first 8,191 are read" in message and "takes about" in message


def _call(n: int, heads: int, mask=None, causal=True) -> AttentionCall:
    torch.manual_seed(n)
    return AttentionCall("x", (1, heads, n, n), query=torch.randn(1, heads, n, 16), key=torch.randn(1, 1, n, 16),
                         mask=mask, causal=causal, scale=0.25)


def test_lazy_maps_refuse_labels_that_do_not_fit():
    with pytest.raises(ValueError, match="70 queries"):
        LazyAttentionMaps(["a"] * 5, [_call(70, 2)], meta=MapsInfo())


def test_a_long_map_is_sent_pooled_under_a_megabyte():
    from explorer.views.language import MAX_CELLS, head_map

    n = 8192
    maps = LazyAttentionMaps([str(i) for i in range(n)], [_call(n, 2)])
    shown = head_map(maps, 0, 1)
    assert shown.matrix.shape[0] <= MAX_CELLS and shown.matrix.astype("float32").nbytes < 1_000_000
    assert maps.computed == 1  # the pooled map only: no whole map was made on the way
    block = float(shown.matrix[100, 50])  # a block of 17 x 17 tokens, averaged by hand from its rows
    rows = maps.rows(0, [1], slice(1700, 1717))[0, :, 850:867]
    assert block == pytest.approx(float(rows.mean()), rel=1e-4)
