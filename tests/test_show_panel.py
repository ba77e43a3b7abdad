"""The panel of ``explorer.show`` without a browser: controls reach the figures, and bad input is refused in words
(a ValueError in Python, the status line in the panel) with the previous view kept."""

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import explorer
from explorer.capture import LOOKED_FOR
from explorer.views import language as long_view
from tests.test_show import GPT, GPTConfig, TimmAttention


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from explorer.models import pretrained

    return AutoTokenizer.from_pretrained(pretrained.default_model_dir())


@pytest.fixture
def gpt2(tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=tokenizer.vocab_size, n_positions=64, n_embd=32, n_layer=2, n_head=4))


def test_controls_reach_the_figures(gpt2, tokenizer):
    panel = explorer.show(gpt2, "The cat sat on the mat.", tokenizer=tokenizer)
    assert panel.main.children[0].title == "layer 0, head 0"
    panel.head.value = 3
    panel.wait()
    assert panel.main.children[0].title == "layer 0, head 3"
    panel.token_pick.value = 2
    panel.wait()
    assert panel.focus_box.children[0].figure.layout.title.text == "'cat' in layer 0, head 3"
    panel.view.value = "mean"  # the token bars follow the map on screen
    panel.wait()
    assert panel.focus_box.children[0].figure.layout.title.text == "'cat' in layer 0, mean over 4 heads"
    panel.view.value = "head"
    panel.figures["entropy"].click(1, 2)  # a head of the entropy map opens it
    panel.wait()
    assert (panel.session.layer, panel.session.head, panel.main.children[0].title) == (1, 2, "layer 1, head 2")
    panel.view.value = "model"
    panel.wait()
    panel.figures["model"].click(5, {})  # the sixth small multiple: layer 1, head 1
    panel.wait()
    assert (panel.session.view, panel.session.layer, panel.session.head) == ("head", 1, 1)
    panel.ablate_button.click()  # layer 1, head 1 zeroed: the logits move, layer 0's maps do not
    panel.wait()
    ablation = panel.ablation_box.children[0].figure
    assert "ablated: L1H1 | output cosine" in ablation.layout.title.text and ablation.data[0].y[0] == 0
    panel.export_bar.target.value, panel.export_bar.format.value = "attention maps", "json"
    panel.export_bar.export()
    assert json.loads(panel.export_bar.last_file[1])["tokens"][:2] == ["[CLS]", "the"]


def tagged_widget(root, name: str):
    """The widget inside ``root`` with the CSS class ``name``."""
    if name in getattr(root, "_dom_classes", ()):
        return root
    found = (tagged_widget(child, name) for child in getattr(root, "children", ()))
    return next((widget for widget in found if widget is not None), None)


def test_a_new_text_is_read_and_an_empty_one_is_refused(gpt2, tokenizer):
    panel = explorer.show(gpt2, "The cat sat.", tokenizer=tokenizer)
    panel.text.value = "A dog ran far away."
    tagged_widget(panel, f"{panel.key}-read").click()  # Show attention
    panel.wait()
    assert panel.session.maps().tokens[1:4] == ("a", "dog", "ran")
    before = panel.session.reading
    panel.text.value = "   "
    tagged_widget(panel, f"{panel.key}-read").click()
    panel.wait()
    assert panel.status.kind == "error" and "empty" in panel.status.text and panel.session.reading is before


def test_generation_continues_the_text(gpt2, tokenizer):
    panel = explorer.show(gpt2, "The cat", tokenizer=tokenizer)
    length = len(panel.session.maps().tokens)
    panel.new_tokens.value = 3
    panel.session.generate()
    panel.wait()
    assert panel.session.text.startswith("The cat") and len(panel.session.maps().tokens) > length
    assert panel.text.value == panel.session.text


class Flaky(nn.Module):
    """A timm-style attention block whose forward raises once ``broken`` is set."""

    def __init__(self):
        super().__init__()
        self.attention, self.broken = TimmAttention(), False

    def forward(self, x):
        if self.broken:
            raise RuntimeError("planted failure")
        return self.attention(x)


def test_a_forward_that_raises_keeps_the_previous_view_and_leaves_nothing_behind():
    model = Flaky()
    panel = explorer.show(model, torch.randn(2, 5, 16))
    before = panel.session.reading
    model.broken = True
    panel.item.value = 1  # another batch item: the model runs again, and fails
    panel.wait()
    assert panel.status.kind == "error" and "“RuntimeError: planted failure”" in panel.status.text
    assert "previous view stays" in panel.status.text and panel.session.reading is before
    assert torch._C._len_torch_function_stack() == 0
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    with pytest.raises(ValueError, match="planted failure"):
        explorer.show(model, torch.randn(1, 5, 16))


class BadMask(nn.Module):
    def forward(self, x):
        return F.scaled_dot_product_attention(x, x, x, attn_mask=torch.ones(3, 7, dtype=torch.bool))


def test_bad_input_is_refused_in_words(gpt2, tokenizer):
    with pytest.raises(ValueError, match=LOOKED_FOR):
        explorer.show(nn.Sequential(nn.Linear(4, 4)), torch.randn(1, 3, 4))
    with torch.device("meta"):
        on_meta = GPT(GPTConfig())
    with pytest.raises(ValueError, match="meta device"):
        explorer.show(on_meta, torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="You gave 2 tokens, but the attention maps are over 6 positions"):
        explorer.show(GPT(GPTConfig()), torch.zeros(1, 6, dtype=torch.long), tokens=["a", "b"])
    with pytest.raises(ValueError, match="NaN or inf"):
        explorer.show((torch.full((1, 2, 3, 3), float("nan")),), tokens=list("abc"))
    broken = GPT(GPTConfig())
    with torch.no_grad():
        broken.h[1].c_attn.weight[0, 0] = float("inf")
    with pytest.raises(ValueError, match="call 1 .h.1. would hold NaN or inf"):
        explorer.show(broken, torch.zeros(1, 6, dtype=torch.long))
    encoded = tokenizer("The cat sat.", return_tensors="pt")
    with pytest.raises(ValueError, match=r"The attention mask has shape \[1, 3\], but the token ids \[1, 6\]"):
        explorer.show(gpt2, {"input_ids": encoded["input_ids"], "attention_mask": torch.ones(1, 3)}, tokenizer=tokenizer)
    with pytest.raises(ValueError, match=r"The attention mask has shape \[3, 7\], which does not fit"):
        explorer.show(BadMask(), torch.randn(1, 2, 5, 4))
    with pytest.raises(ValueError, match="Batch item 4 does not exist"):
        explorer.show(GPT(GPTConfig()), torch.zeros(2, 6, dtype=torch.long), item=4)
    with pytest.raises(TypeError, match="given to show.. is 'a model', which it cannot read"):
        explorer.show("a model")
    with pytest.raises(TypeError, match="no option called colour"):
        explorer.show(gpt2, "text", tokenizer=tokenizer, colour="red")


def test_a_text_past_the_context_is_cut_with_a_notice_and_drawn_pooled():
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=8192, n_layer=1, n_head=2, n_embd=16))
    panel = explorer.show(model, torch.randint(0, 20, (1, 20_000)))
    reading = panel.session.reading
    assert "The input is 20,000 tokens long; GPT reads at most 8,192, so it was cut" in reading.notice
    assert reading.notice in panel.notice.value and len(panel.session.maps().tokens) == 8192
    assert not reading.is_whole("self-attention")  # the maps are worked out when shown, one head at a time
    head_map = panel.main.children[0]
    size = -(-8192 // long_view.MAX_CELLS)  # tokens per block of the pooled map
    assert head_map.shape == [-(-8192 // size)] * 2 and f"mean over blocks of {size} tokens" in head_map.title
    assert panel.session.views() == ("head",)
    panel.session.update(view="head", head=1)
    panel.wait()
    assert panel.session.maps().computed == 2
    head_map.click(100, 3)  # a block of the pooled map: its tokens, whole
    panel.wait()
    assert panel.session.zoom >= 0 and head_map.shape == [long_view.ZOOM, long_view.ZOOM]


def test_present_mode_opens_large_and_the_switch_turns_it_off(gpt2, tokenizer):
    panel = explorer.show(gpt2, "The cat sat.", tokenizer=tokenizer, present=True)
    assert panel.present.on and {"ae-presentable", "ae-present"} <= set(panel._dom_classes)
    panel.present.on = False
    assert "ae-present" not in panel._dom_classes and "ae-presentable" in panel._dom_classes
    assert "ae-present" not in explorer.show(gpt2, "The cat sat.", tokenizer=tokenizer)._dom_classes
    with pytest.raises(TypeError, match="present is True"):
        explorer.show(gpt2, "The cat sat.", tokenizer=tokenizer, present="yes")


def test_a_read_in_the_worker_shows_its_progress_and_stop_ends_it_with_the_view_kept():
    import threading

    gate = threading.Event()

    class TwoCalls(nn.Module):
        """Two attention calls with a pause between them, so Stop lands while the read runs."""

        def forward(self, x):
            x = F.scaled_dot_product_attention(x, x, x)
            gate.wait(30)
            return F.scaled_dot_product_attention(x, x, x)

    gate.set()
    panel = explorer.show(TwoCalls(), torch.randn(2, 2, 5, 4))
    session, first = panel.session, panel.session.reading
    progress, shown = [], []
    session.observe(lambda change: progress.append(change["new"]), "progress")
    panel.progress.layout.observe(lambda change: shown.append(change["new"]), "visibility")
    session.update(item=1)  # read in the worker
    panel.wait()
    assert progress == [0.5, 1.0] and shown == ["visible", "hidden"] and session.reading.item == 1
    gate.clear()
    session.update(item=0)
    assert session.home.wait_until(lambda: session.progress == 0.5, 30)  # the first call is read; the model waits
    session.stop_work()
    gate.set()
    panel.wait()
    assert panel.status.kind == "error" and "Stopped: the input was not read" in panel.status.text
    assert session.reading.item == 1 and session.reading is not first  # the previous view stays
