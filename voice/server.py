"""A minimal on-premises TTS server speaking the protocol of docs/voice.md.

It runs one of our engines (the local voice by default) for other machines: a city
that has no TTS server of its own can run this one (``hotline voices serve``), and the
tests run it to exercise ``HttpTtsEngine``. Standard library only: the protocol is two
routes, and the synthesis, not the HTTP, is the work.

    GET  /v1/health      -> 200 {"engine": ..., "voice": ..., "sample_rate": 8000}
    POST /v1/synthesize  {"text": "...", "voice": "", "sample_rate": 8000}
                         -> 200 audio/wav (16-bit mono PCM), or 4xx/5xx {"error": ...}
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from voice.tts import RATE, PromptError, TtsEngine, pcm_to_wav, trim_and_level

log = logging.getLogger(__name__)
MAX_TEXT_CHARS = 2000
MAX_BODY_BYTES = 64 * 1024


class TtsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], engine: TtsEngine) -> None:
        super().__init__(address, _Handler)
        self.engine = engine
        self.synthesized = 0  # requests answered with audio
        self._count_lock = threading.Lock()

    def count(self) -> None:
        with self._count_lock:
            self.synthesized += 1

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: TtsServer

    def log_message(self, format: str, *args: object) -> None:
        log.debug("tts-server: " + format, *args)  # never the text: it is not in the line

    def do_GET(self) -> None:
        if self.path != "/v1/health":
            self._error(404, "unknown path; use /v1/health or /v1/synthesize")
            return
        engine = self.server.engine
        self._json(200, {"engine": engine.name, "voice": engine.voice, "sample_rate": RATE})

    def do_POST(self) -> None:
        if self.path != "/v1/synthesize":
            self._error(404, "unknown path; use /v1/synthesize")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY_BYTES:
            self._error(413 if length else 400, "send a JSON body of at most 64 KB")
            return
        try:
            request = json.loads(self.rfile.read(length))
            text = request["text"]
            if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT_CHARS:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            self._error(400, 'expected {"text": "...", "voice": "", "sample_rate": 8000} '
                             f"with 1-{MAX_TEXT_CHARS} characters of text")  # fmt: skip
            return
        try:
            pcm = trim_and_level(self.server.engine.synthesize(text))
        except PromptError as exc:
            self._error(503, str(exc))
            return
        self.server.count()
        body = pcm_to_wav(pcm, RATE)
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: dict[str, object]) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})
