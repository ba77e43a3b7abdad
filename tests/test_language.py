"""Language models: maps equal transformers' output_attentions, causal, GQA labels, greedy equals generate, cache."""

import shutil

import pytest
import torch

from explorer.models import language, pretrained
from tests.conftest import eager_attentions, save_tiny_gpt2


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory):
    """A random 2-layer GPT-2 of width 32 saved with the packaged MiniLM tokenizer."""
    return save_tiny_gpt2(tmp_path_factory.mktemp("gpt2"))


def reference_attentions(model, ids):
    return eager_attentions(model.model, ids)


def test_tiny_gpt2_maps_equal_output_attentions(tiny_gpt2):
    model = pretrained.load(tiny_gpt2)  # the decoder family is read by the language module
    assert isinstance(model, language.LanguageModel) and model.model.config._attn_implementation == "sdpa"
    maps = model.attend("the cat sat on the mat")
    ids, _ = model.encode("the cat sat on the mat")
    assert maps.weights.shape == (2, 4, len(ids), len(ids))
    assert torch.allclose(maps.weights, reference_attentions(model, ids), atol=1e-6)
    assert torch.triu(maps.weights, diagonal=1).abs().max() == 0
    assert len(maps.meta.next_tokens) == len(ids) and len(maps.meta.next_tokens[0]) == 5


def test_ablation_changes_later_layers_only(tiny_gpt2):
    model = language.load(tiny_gpt2)
    base, ablated = model.attend("the cat sat on the mat"), model.attend("the cat sat on the mat", ablate=[(0, 1)])
    assert torch.equal(base.weights[0], ablated.weights[0])
    assert not torch.allclose(base.weights[1], ablated.weights[1])
    assert ablated.meta.ablated == ((0, 1),)


def test_long_prompt_is_cut_with_a_notice(tiny_gpt2):
    model = language.load(tiny_gpt2)
    maps = model.attend("word " * 200)
    assert maps.weights.shape[-1] == 64 and "cut to 64" in maps.meta.notice


def test_encoder_folder_names_the_pretrained_tab():
    with pytest.raises(ValueError, match="Pretrained tab"):
        language.load(pretrained.default_model_dir())


@pytest.mark.parametrize("kwargs, words", [
    (dict(prompt=""), "empty"), (dict(prompt="hi", max_new_tokens=0), "max_new_tokens"),
    (dict(prompt="hi", max_new_tokens=-3), "max_new_tokens"), (dict(prompt="hi", max_new_tokens=10**6), "max_new_tokens"),
    (dict(prompt="hi", temperature=-0.5), "temperature")])
def test_bad_generation_inputs_say_why(tiny_gpt2, kwargs, words):
    model = language.load(tiny_gpt2)
    with pytest.raises(ValueError, match=words):
        model.generate(**kwargs)


def test_greedy_equals_transformers_generate_and_streams(tiny_gpt2):
    model = language.load(tiny_gpt2)
    streamed = []
    result = model.generate("the cat sat", max_new_tokens=6, on_token=lambda label, top: streamed.append(label))
    ids, _ = model.encode("the cat sat")
    with torch.inference_mode():
        expected = model.model.generate(torch.tensor([ids]), max_new_tokens=6, do_sample=False,
                                        eos_token_id=None, pad_token_id=0)
    n = len(result.ids)
    assert list(result.ids) == expected[0, :n].tolist()
    assert len(streamed) == sum(result.generated) == len(result.candidates)
    assert result.maps.weights.shape[-1] == n


def test_sampling_is_seeded(tiny_gpt2):
    model = language.load(tiny_gpt2)
    a = model.generate("the cat", max_new_tokens=8, temperature=1.5, seed=3)
    b = model.generate("the cat", max_new_tokens=8, temperature=1.5, seed=3)
    assert a.ids == b.ids


def test_smollm_maps_equal_output_attentions_with_gqa_labels(smollm):
    maps = smollm.attend("The capital of France is")
    ids, _ = smollm.encode("The capital of France is")
    assert maps.weights.shape == (30, 9, len(ids), len(ids))
    assert torch.allclose(maps.weights, reference_attentions(smollm, ids), atol=1e-5)
    assert torch.triu(maps.weights, diagonal=1).abs().max() == 0
    assert maps.meta.kv_heads == (0, 0, 0, 1, 1, 1, 2, 2, 2)


def test_smollm_greedy_equals_generate(smollm):
    result = smollm.generate("The capital of France is", max_new_tokens=4)
    ids, _ = smollm.encode("The capital of France is")
    with torch.inference_mode():
        expected = smollm.model.generate(torch.tensor([ids]), max_new_tokens=4, do_sample=False)
    assert list(result.ids) == expected[0].tolist()[: len(result.ids)]
    assert "Paris" in result.text


def test_cache_is_built_once_reused_and_rebuilt_when_corrupt(smollm, monkeypatch):
    target = language.converted_dir()
    assert (target / language.DONE_MARK).is_file()
    calls = []
    original = language.convert_gguf
    monkeypatch.setattr(language, "convert_gguf", lambda *a, **k: calls.append(1) or original(*a, **k))
    again = language.load()
    assert calls == [] and again.notice == ""
    weights = target / "model.safetensors"
    head = weights.read_bytes()[:1000]
    weights.unlink()  # a new file: loaded models keep their memory-mapped pages of the old one
    weights.write_bytes(head)  # truncated
    rebuilt = language.load()
    assert calls == [1] and "damaged" in rebuilt.notice
    assert torch.allclose(rebuilt.attend("Hello there").weights, smollm.attend("Hello there").weights, atol=1e-6)


def test_smollm_has_an_induction_head_and_ablating_it_raises_second_copy_loss(smollm):
    from explorer import heads

    scores = smollm.induction_scores(length=40, seed=0)
    assert scores.shape == (30, 9) and scores.max() > 0.5
    top = heads.top_heads(scores, 3)
    assert heads.second_copy_loss(smollm, top) > heads.second_copy_loss(smollm) + 0.1


def test_pure_head_scores_match_hand_computation():
    from explorer import heads
    from explorer.maps import AttentionMaps

    weights = torch.zeros(1, 2, 3, 3)
    weights[0, 0] = torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0]])  # previous-token (and sink) head
    weights[0, 1] = torch.eye(3)
    maps = AttentionMaps(tokens=list("abc"), weights=weights)
    assert heads.previous_token_score(maps).tolist() == [[1.0, 0.0]]
    assert torch.allclose(heads.self_score(maps), torch.tensor([[1 / 3, 1.0]]))
    assert torch.allclose(heads.first_token_score(maps), torch.tensor([[2 / 3, 1 / 3]]))


def test_generation_with_ablated_heads_equals_generate_with_those_heads_zeroed_by_hand(tiny_gpt2):
    model = language.load(tiny_gpt2)
    ids, _ = model.encode("the cat sat on the mat")
    projection = model.model.transformer.h[1].attn.c_proj
    head_size = 32 // 4

    def zero_head_2(module, args):
        context = args[0].clone()
        context[..., 2 * head_size:3 * head_size] = 0.0
        return (context,)

    hook = projection.register_forward_pre_hook(zero_head_2)
    try:
        with torch.inference_mode():
            expected = model.model.generate(torch.tensor([ids]), max_new_tokens=6, do_sample=False,
                                            pad_token_id=0)[0].tolist()
    finally:
        hook.remove()
    result = model.generate("the cat sat on the mat", max_new_tokens=6, ablate=[(1, 2)])
    assert list(result.ids) == expected[: len(result.ids)]
    assert result.maps.meta.ablated == ((1, 2),)
    plain = model.generate("the cat sat on the mat", max_new_tokens=6)
    assert not projection._forward_pre_hooks  # no hook is left behind
    assert plain.maps.meta.ablated == ()

