"""Encoder-decoders: the three maps equal transformers' attentions for tiny random Marian, T5, BART and mBART, greedy
translation equals generate, and a folder without its own tokenizer gets a message that says what is missing."""

import pytest
import torch

from explorer.models import language, pretrained
from explorer.models.seq2seq import Seq2SeqModel, read

SOURCE = "the cat sat on the mat"


def minilm_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(pretrained.default_model_dir())


def tiny_config(kind: str, tokenizer, vocab_size: int | None = None):
    """A 2-layer, width-32 Marian, BART, mBART or T5 config whose ids (vocabulary, padding, decoder start, end) fit
    ``tokenizer``."""
    from transformers import BartConfig, MarianConfig, MBartConfig, T5Config

    ids = dict(vocab_size=vocab_size or len(tokenizer), pad_token_id=tokenizer.pad_token_id,
               decoder_start_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.sep_token_id)
    if kind in ("marian", "bart", "mbart"):
        classes = {"marian": MarianConfig, "bart": BartConfig, "mbart": MBartConfig}
        config = classes[kind](d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                               decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64,
                               max_position_embeddings=64, bos_token_id=tokenizer.cls_token_id, **ids)
    else:
        config = T5Config(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, **ids)
    config._attn_implementation = "eager"
    return config


def save_tiny(folder, kind: str, tokenizer=None, vocab_size: int | None = None):
    """A random tiny ``kind`` model saved to ``folder``, with ``tokenizer`` beside it unless it is None."""
    from transformers import BartForConditionalGeneration, MarianMTModel, MBartForConditionalGeneration, T5ForConditionalGeneration

    tokenizer_for_ids = tokenizer or minilm_tokenizer()
    torch.manual_seed(0)
    classes = {"marian": MarianMTModel, "t5": T5ForConditionalGeneration, "bart": BartForConditionalGeneration,
               "mbart": MBartForConditionalGeneration}
    classes[kind](tiny_config(kind, tokenizer_for_ids, vocab_size)).save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=["marian", "t5", "bart", "mbart"])
def tiny(request, tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp(request.param), request.param, minilm_tokenizer())


@pytest.fixture(scope="module")
def marian(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("marian"), "marian", minilm_tokenizer())


def reference(folder):
    """The same folder read by transformers directly."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    return (AutoModelForSeq2SeqLM.from_pretrained(folder, attn_implementation="eager").eval(),
            AutoTokenizer.from_pretrained(folder))


def assert_maps_equal(maps, output):
    assert torch.allclose(maps["encoder"].weights, torch.stack(output.encoder_attentions)[:, 0], atol=1e-6)
    assert torch.allclose(maps["decoder"].weights, torch.stack(output.decoder_attentions)[:, 0], atol=1e-6)
    assert torch.allclose(maps["cross"].weights, torch.stack(output.cross_attentions)[:, 0], atol=1e-6)


def test_load_gives_an_encoder_decoder_for_every_family(tiny):
    model = pretrained.load(tiny)
    assert isinstance(model, Seq2SeqModel) and model.family == "encoder-decoder"
    assert (model.n_encoder_layers, model.n_decoder_layers, model.n_heads) == (2, 2, 4)
    with pytest.raises(ValueError, match="Pretrained tab"):
        language.load(tiny)  # the language model tab names where an encoder-decoder is shown


def test_maps_with_a_target_equal_transformers_attentions(tiny):
    model = pretrained.load(tiny)
    assert model.model.config._attn_implementation == "sdpa"  # read at the SDPA calls, compared with eager below
    maps = model.attend(SOURCE, "le chat est assis")
    ref, tokenizer = reference(tiny)
    batch = tokenizer(SOURCE, text_target="le chat est assis", return_tensors="pt")
    with torch.inference_mode():  # transformers shifts the labels right itself to make the decoder's input
        output = ref(input_ids=batch["input_ids"], labels=batch["labels"], output_attentions=True)
    assert_maps_equal(maps, output)
    source_tokens = [t for t in tokenizer.convert_ids_to_tokens(batch["input_ids"][0])]
    assert list(maps["encoder"].tokens) == list(maps["cross"].key_tokens) == source_tokens
    assert maps["cross"].weights.shape == (2, 4, batch["labels"].shape[1], batch["input_ids"].shape[1])
    assert maps["cross"].meta.kind == "cross-attention" and maps["decoder"].key_tokens is None
    assert torch.triu(maps["decoder"].weights, diagonal=1).abs().max() == 0  # the decoder sees no later token
    written = model.run(SOURCE, "le chat est assis").written
    assert list(written) == tokenizer.convert_ids_to_tokens(batch["labels"][0])


def test_no_target_translates_greedily_and_reads_its_own_output(tiny):
    model = pretrained.load(tiny)
    translation = model.run(SOURCE, None, max_new_tokens=6)
    ref, tokenizer = reference(tiny)
    inputs = tokenizer(SOURCE, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        steps = ref.generate(input_ids=inputs, do_sample=False, num_beams=1, max_new_tokens=6)
        output = ref(input_ids=inputs, decoder_input_ids=steps[:, :-1], output_attentions=True)
    assert list(translation.written) == tokenizer.convert_ids_to_tokens(steps[0, 1:])
    assert translation.target == tokenizer.decode(steps[0, 1:], skip_special_tokens=True)
    assert translation.translated and "without an end token" in translation.maps["cross"].meta.notice
    assert_maps_equal(translation.maps, output)
    assert model.translate(SOURCE, max_new_tokens=6) == translation.target
    assert model.attend(SOURCE, "  ", max_new_tokens=6)["cross"].tokens == translation.maps["cross"].tokens


def test_reading_has_the_entropy_of_every_part(tiny):
    reading = read(pretrained.load(tiny), SOURCE, "le chat")
    assert reading.maps is reading.parts["cross"]
    assert set(reading.entropy) == {"encoder", "decoder", "cross"} and reading.entropy["cross"].shape == (2, 4)


@pytest.mark.parametrize("source, target, words", [("", None, "empty"), ("   ", "x", "empty")])
def test_empty_source_is_a_clear_error(marian, source, target, words):
    with pytest.raises(ValueError, match=words):
        pretrained.load(marian).attend(source, target)


@pytest.mark.parametrize("count", [0, -2, 10**6, 2.5, "many", True])
def test_bad_max_new_tokens_is_a_clear_error(marian, count):
    with pytest.raises(ValueError, match="max_new_tokens must be a whole number"):
        pretrained.load(marian).attend(SOURCE, max_new_tokens=count)


@pytest.mark.parametrize("source, target", [(42, None), (None, None), ("the cat", 3.5), ("the cat", ["le"])])
def test_source_and_target_that_are_not_text_say_so(marian, source, target):
    with pytest.raises((TypeError, ValueError), match="must be text"):
        pretrained.load(marian).attend(source, target)


def test_greedy_length_follows_the_source(marian):
    translation = pretrained.load(marian).run("the cat")  # [CLS] the cat [SEP]: at most 2 * 4 + 10 tokens
    assert 1 <= len(translation.written) <= 18


def test_folder_without_its_tokenizer_says_so(tmp_path):
    folder = save_tiny(tmp_path / "marian", "marian")
    with pytest.raises(ValueError, match="not its tokenizer.*tokenizer.save_pretrained"):
        pretrained.load(folder)


def test_tokenizer_of_another_model_says_so(tmp_path):
    folder = save_tiny(tmp_path / "marian", "marian", minilm_tokenizer(), vocab_size=1000)
    with pytest.raises(ValueError, match="not this model's: it has 30522 tokens, the model only 1000"):
        pretrained.load(folder)


def test_tokenizer_with_another_padding_id_says_so(tmp_path):
    from transformers import AutoConfig

    folder = save_tiny(tmp_path / "t5", "t5", minilm_tokenizer())
    config = AutoConfig.from_pretrained(folder)
    config.pad_token_id = 5
    config.save_pretrained(folder)
    with pytest.raises(ValueError, match="padding token is id 0, the model's is 5"):
        pretrained.load(folder)

