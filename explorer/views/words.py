"""Words beside the pictures: the "what am I looking at?" line under each view.

Each line names the quantity drawn and its scale, explains the terms a view uses (the "·2" of a repeated token,
the second-copy loss) and says why a map may look uniform when that is expected. Pure text, no widgets.
"""

from __future__ import annotations

from explorer.heads import heads_in_words  # noqa: F401  (re-exported: the views' words for head pairs)

REPEATED = "A token that occurs again is written with ·2, ·3 (its second, third time in the text)."


# ----- Mechanism -----------------------------------------------------------------------------------------------
def mechanism_vectors() -> str:
    return ("Each token has a 2-D query, key and value, drawn as arrows from the origin. Left: the chosen token's "
            "query (red) and every key (blue); a key pointing the same way as the query gets a high score. Right: "
            "each value (faint), the value scaled by its weight (dotted), and their sum, the context vector (black).")


def mechanism_scores(score: str) -> str:
    text = ("Scores e_ij: how well the query of row i matches the key of column j, before the softmax; the colour "
            "runs from -6 (blue) through 0 (white) to +6 (red) in every frame.")
    if score == "additive":
        text += (" The additive score v^T tanh(W_q q + W_k k) uses fixed random matrices W_q, W_k and a random v "
                 "(a network would learn them), so it does not reward a key for pointing like the query: that is "
                 "why 'one query matches one key' looks almost uniform under it.")
    elif score == "general":
        text += " The general score q^T W k turns the key by a fixed matrix W before comparing (a network learns W)."
    return text


def mechanism_weights(masked: int) -> str:
    text = ("Weights a_ij = softmax(e_ij / T) along each row: 0 (white) to 1 (dark blue), and each row sums to 1. "
            "A high temperature T evens a row out; a low one picks its largest score.")
    if masked:
        text += f" A red cross marks a masked cell (weight 0): {masked} here. Click a cell to block or allow it."
    else:
        text += " Click a cell to block it (a custom mask)."
    return text


# ----- Pretrained and Language model maps ----------------------------------------------------------------------
def head_map(where: str, causal: bool = False) -> str:
    """A single head's map: ``where`` says which one ("layer 3, head 1")."""
    text = (f"{where}: each row is a query token (the one attending), each column a key token; a cell is the "
            "weight the query gives the key, from 0 (white) to 1 (dark blue), and each row sums to 1.")
    if causal:
        text += " A token sees only itself and the tokens before it, so the upper right is empty."
    return f"{text} {REPEATED} Click a row to pick its token."


def pooled_map(block: int, top: float) -> str:
    return (f"The text is long: each cell is the mean weight over a block of {block} tokens, and the colour runs to "
            f"{top:.3g} (only the strongest half percent of blocks is darker), so weak but real attention shows. "
            "Labels give the token numbers of every few blocks; hover a cell for its own. Click a block to zoom in.")


def layer_grid(layer: int, n_heads: int) -> str:
    return (f"Every head of layer {layer} ({n_heads}), on one colour scale from 0 to 1: rows are queries, columns "
            f"keys. Click a head to open it large. {REPEATED}")


def mean_map(layer: int, n_heads: int) -> str:
    return (f"The average of layer {layer}'s {n_heads} heads: the weight each query (row) gives each key (column), "
            f"0 to 1, each row summing to 1. Heads that disagree average out to a paler map. {REPEATED}")


def rollout_map(layer: int) -> str:
    return (f"Attention rollout through layer {layer}: the head-averaged maps of layers 0 to {layer}, each with the "
            "residual connection added (half the map, half the token itself), multiplied together. A row says how "
            "much that token at this layer draws on each input token (0 to 1, rows sum to 1).")


def compare_maps() -> str:
    return ("The same head on text A and on text B (0 to 1), and B - A on the tokens the two texts share: red where "
            "B gives more weight, blue where it gives less.")


def entropy_map() -> str:
    return ("Each head's spread: the mean entropy of its rows as a share of the largest possible, log K for K "
            "tokens. Near 0 (dark): each query looks at one token; near 1 (yellow): spread evenly over all. "
            "Click a cell to open that head.")


def focus_bars(where: str, token: str) -> str:
    return (f"The bars read the map above ({where}): on the left the weights '{token}' gives (its row), on the right "
            f"the weights it receives from each query (its column), 0 to 1.")


def ablation_bars(names: str, cosine: float | None) -> str:
    text = (f"With {names} zeroed inside the model, the largest change of any attention weight in each layer "
            "(0: that layer did not notice). Layers before the ablated head cannot change.")
    if cosine is not None:
        text += f" The sentence embedding before and after has cosine similarity {cosine:.4f} (1 = unchanged)."
    return text


# ----- Language model ------------------------------------------------------------------------------------------
FINDER_SCORES = {
    "previous token": "the mean weight each token gives to the token just before it",
    "attention sink": "the mean weight on the first token, where many heads park attention they do not need",
    "self": "the mean weight each token gives to itself",
    "entropy": "how spread out each row is, in nats (0: one token; higher: spread over many)",
    "induction": ("on a random token sequence repeated twice, the mean weight from each token of the second copy to "
                  "the token that followed it in the first copy: the look-up an induction head does"),
}


def finder_grid(name: str) -> str:
    return (f"Head finder, one cell per head (layers down, heads across): {FINDER_SCORES.get(name, name)}. "
            "Click a cell to open that head.")


def candidates(position: int, token: str) -> str:
    return (f"The model's five likeliest next tokens after '{token}' (position {position}), with their "
            "probabilities. Pick another position to see what the model expected there.")


def probe() -> str:
    return ("Second-copy loss: the model reads a random sequence of tokens twice over; the loss is its mean "
            "cross-entropy (in nats) when predicting the second copy. Induction heads copy what came next the first "
            "time, so the loss is low; zeroing them (ablation) raises it.")


def on_probe(where: str, length: int) -> str:
    return (f"{where} on the sequence it was scored on: {length} random tokens, then the same {length} again. An "
            "induction head's weight runs along a stripe: each token of the second copy looks at the token after "
            "its first occurrence.")


# ----- Train a Transformer and Vision -------------------------------------------------------------------------
def training_heads(step: int, cross: bool = False) -> str:
    kind = ("cross-attention: each row is a character the decoder writes, each column a character it reads"
            if cross else "each row is a query token of the probe input, each column a key token")
    return (f"Every head of every layer at step {step}: {kind}; the weights run from 0 (white) to 1 (dark blue) in "
            f"every frame. {REPEATED} Click a head to open it large.")


def cbam_gallery(localization: float | None) -> str:
    text = ("Each row is a test image and what the nets made of it: its true class, then each net's answer. Over the "
            "image: each CBAM stage's spatial map, Grad-CAM of each CNN (where the answer's evidence lies) and the "
            "ViT's maps, from 0 (dark) to 1 (bright).")
    if localization is not None and localization < 1.3:
        text += (f" CBAM's spatial maps look like a uniform wash here, and that is what they are: their "
                 f"localization (map mass in the object's box over the box's share of the image) is "
                 f"{localization:.2f}, where a uniform map scores 1.0. CBAM reweights features all over the image "
                 "rather than pointing at the object.")
    return text
