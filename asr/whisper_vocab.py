"""A Mandarin-only output vocabulary for a CTranslate2 Whisper model.

Whisper's decoder scores all 51,865 tokens at every step; most of them are English,
Japanese, Cyrillic... words a 12345 caller never says. The output projection over that
vocabulary is the largest part of each decoding step (about half of it for the base
model), so we derive a model whose embedding keeps only the tokens that can spell
Chinese text: tokens made of Han characters and CJK punctuation, the byte pieces of
multi-byte characters, digits, short Latin pieces and acronyms (ETC, APP), and every
special token. Measured on ../shared/audio (8 kHz A-law, one core): a decode takes
90-110 ms less, and the text is identical except where the full model chose a non-Chinese
token. Logits of the kept tokens are unchanged (the same rows of the same matrix), so
this is a constraint on the search, not a different model.

No library does this: CTranslate2 can restrict vocabularies only for translation
models (``vmap``), so we rewrite ``model.bin`` ourselves. Its format is CTranslate2's
documented binary layout (``ctranslate2/specs/model_spec.py``, ``_serialize``): a
header, named variables (rank, dims, type, bytes), then aliases. Only the rows of the
decoder's embedding (and its scale or projection, when stored) change.

The derived folder is a cache under ``models_dir``: rebuilt whenever the source model's
``model.bin`` changes (size, time or content hash recorded beside it). No weights are
stored in the repository.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np

from asr.base import AsrError

KEPT_IDS = "kept_ids.json"
SOURCE_STAMP = "source.json"
# CTranslate2's variable type ids (model_spec._dtype_to_type_id).
DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: np.uint16}
ASCII_SYMBOLS = set(" ,.!?;:'\"()-%/")


class VocabularyMap:
    """Token ids of the original tokenizer <-> ids of the derived model."""

    def __init__(self, kept: list[int]) -> None:
        self.kept = tuple(kept)  # model id -> tokenizer id
        self._to_model = {t: m for m, t in enumerate(self.kept)}

    @classmethod
    def load(cls, model_dir: Path) -> VocabularyMap:
        return cls(json.loads((model_dir / KEPT_IDS).read_text(encoding="utf-8")))

    def to_model(self, token_ids: list[int]) -> list[int]:
        """Tokenizer ids -> model ids; a token the model cannot say is dropped."""
        return [self._to_model[t] for t in token_ids if t in self._to_model]

    def to_tokenizer(self, model_ids: list[int]) -> list[int]:
        return [self.kept[m] for m in model_ids]


def mandarin_model(source: Path, cache_root: Path) -> Path:
    """The Mandarin-vocabulary copy of the Whisper model in ``source`` (built once)."""
    target = cache_root / f"{source.name}-zh-vocab"
    stamp = _source_stamp(source)
    stamp_file = target / SOURCE_STAMP
    if stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp:
        return target
    building = cache_root / f".{target.name}.building"
    try:
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(parents=True)
        build_mandarin_model(source, building)
        (building / SOURCE_STAMP).write_text(json.dumps(stamp))
        shutil.rmtree(target, ignore_errors=True)
        building.replace(target)
    except OSError as exc:
        raise AsrError(
            f"cannot build the Mandarin-vocabulary Whisper model in {cache_root}: {exc}. "
            "Fix: make models_dir writable, or set asr.whisper.vocabulary: full"
        ) from exc
    return target


def build_mandarin_model(source: Path, target: Path) -> list[int]:
    vocabulary = _read_vocabulary(source)
    kept = mandarin_token_ids(vocabulary)
    _write_model(source / "model.bin", target / "model.bin", kept, len(vocabulary))
    (target / "vocabulary.txt").write_text(
        "\n".join(vocabulary[i] for i in kept) + "\n", encoding="utf-8"
    )
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    ids = VocabularyMap(kept)
    for key in ("lang_ids", "suppress_ids", "suppress_ids_begin"):
        config[key] = ids.to_model(config.get(key, []))
    (target / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    shutil.copyfile(source / "tokenizer.json", target / "tokenizer.json")
    (target / KEPT_IDS).write_text(json.dumps(kept), encoding="utf-8")
    return kept


def mandarin_token_ids(vocabulary: list[str]) -> list[int]:
    """Ids of the tokens that can spell Chinese text, plus every special token."""
    byte_of = _byte_decoder()
    first_special = vocabulary.index("<|endoftext|>")
    kept: list[int] = []
    for token_id, token in enumerate(vocabulary):
        if token_id >= first_special:
            kept.append(token_id)
            continue
        try:
            raw = bytes(byte_of[ch] for ch in token)
        except KeyError:
            continue
        if _spells_chinese(raw):
            kept.append(token_id)
    return kept


def _spells_chinese(raw: bytes) -> bool:
    text = raw.decode("utf-8", errors="ignore")
    if not text:
        return all(b >= 0x80 for b in raw)  # a piece of a multi-byte character
    if all(_chinese_char(ch) for ch in text):
        return True
    word = text.strip()
    short = len(word) <= 2 or (word.isupper() and len(word) <= 4)  # pieces, acronyms (ETC)
    return word.isascii() and word.isalnum() and (short or word.isdigit())


def _chinese_char(ch: str) -> bool:
    code = ord(ch)
    return (
        0x4E00 <= code <= 0x9FFF  # CJK unified ideographs
        or 0x3400 <= code <= 0x4DBF  # extension A
        or 0xF900 <= code <= 0xFAFF  # compatibility ideographs
        or 0x3000 <= code <= 0x303F  # CJK punctuation
        or 0xFF00 <= code <= 0xFFEF  # full-width forms
        or 0x2000 <= code <= 0x206F  # general punctuation (…, “ ”)
        or (ch.isascii() and ch.isdigit())
        or ch in ASCII_SYMBOLS
    )


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte <-> printable character table, which Whisper's vocabulary uses."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]  # fmt: skip
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def _read_vocabulary(model_dir: Path) -> list[str]:
    path = model_dir / "vocabulary.txt"
    if not path.is_file():
        raise AsrError(f"{model_dir} has no vocabulary.txt: not a CTranslate2 Whisper model")
    tokens = path.read_text(encoding="utf-8").split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    if "<|endoftext|>" not in tokens:
        raise AsrError(f"{path} is not a Whisper vocabulary (no <|endoftext|>)")
    return tokens


class _Reader:
    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.path, self.at = data, path, 0

    def unpack(self, fmt: str) -> int:
        try:
            (value,) = struct.unpack_from(fmt, self.data, self.at)
        except struct.error as exc:
            raise AsrError(f"{self.path} is truncated or not a CTranslate2 model") from exc
        self.at += struct.calcsize(fmt)
        return int(value)

    def string(self) -> bytes:
        size = self.unpack("H")
        value = self.data[self.at : self.at + size]  # with its NUL, written back as is
        self.at += size
        return value

    def take(self, size: int) -> bytes:
        if self.at + size > len(self.data):
            raise AsrError(f"{self.path} is truncated or not a CTranslate2 model")
        value = self.data[self.at : self.at + size]
        self.at += size
        return value


def _write_model(source: Path, target: Path, kept: list[int], vocab_size: int) -> None:
    reader = _Reader(source.read_bytes(), source)
    out = bytearray()
    version = reader.unpack("I")
    if version != 6:
        raise AsrError(f"{source}: CTranslate2 model format {version} is not supported (6 is)")
    name = reader.string()
    if not name.startswith(b"WhisperSpec"):
        raise AsrError(f"{source} is not a Whisper model ({name[:-1].decode(errors='replace')})")
    out += struct.pack("I", version) + struct.pack("H", len(name)) + name
    out += struct.pack("I", reader.unpack("I"))  # spec revision
    count = reader.unpack("I")
    out += struct.pack("I", count)
    rows = np.asarray(kept)
    sliced = 0
    for _ in range(count):
        var = reader.string()
        dims = [reader.unpack("I") for _ in range(reader.unpack("B"))]
        dtype = reader.unpack("B")
        data = reader.take(reader.unpack("I"))
        if var.startswith((b"decoder/embeddings/", b"decoder/projection/")) and dims \
                and dims[0] == vocab_size:  # fmt: skip
            array = np.frombuffer(data, dtype=DTYPES[dtype]).reshape(dims)[rows]
            dims, data = list(array.shape), array.tobytes()
            sliced += 1
        out += struct.pack("H", len(var)) + var + struct.pack("B", len(dims))
        out += b"".join(struct.pack("I", d) for d in dims)
        out += struct.pack("B", dtype) + struct.pack("I", len(data)) + data
    if not sliced:
        raise AsrError(f"{source}: no decoder embedding of {vocab_size} rows found")
    aliases = reader.unpack("I")
    out += struct.pack("I", aliases)
    for _ in range(2 * aliases):
        value = reader.string()
        out += struct.pack("H", len(value)) + value
    target.write_bytes(bytes(out))


def _source_stamp(source: Path) -> dict[str, object]:
    model = source / "model.bin"
    if not model.is_file():
        raise AsrError(f"{source} is not a CTranslate2 Whisper model directory (no model.bin)")
    info = model.stat()
    return {"model": str(model.resolve()), "size": info.st_size, "mtime": info.st_mtime_ns}
