"""What each recognition step of issue 22 costs (docs/asr.md, "What each step costs").

Decoder: the Whisper settings are loaded side by side and decode the calls-dev
utterances (A-law round trip, cut to the speech) clip by clip in turn, so the machine's
load hits them alike; prints the median decode and the median per-clip difference to the
first setting. Bot: ``Brain.classify`` of the first hypothesis against
``Brain.understand`` of the recorded n-best fixtures. Run from the repository root:

    python scripts/asr_step_costs.py [REPEATS]
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from asr.bench import load_clips, speech_end_s, speech_start_s, telephone_path
from asr.whisper_engine import WhisperEngine
from bot import heard_eval
from bot.brain import BotPaths, Brain
from bot.events import Utterance
from hotline.settings import load_settings

STEPS = [  # name, beam, n-best, prompt characters of hints, hints (None: the bot's)
    ("beam 2, first hypothesis only (before)", 2, 1, 0, None),
    ("beam 2, n-best 2 (now)", 2, 2, 0, None),
    ("beam 3, n-best 3", 3, 3, 0, None),
    ("beam 4, n-best 4", 4, 4, 0, None),
    ("n-best 2 + short per-state prompt (3 terms)", 2, 2, 40, ["低保", "公积金", "人工客服"]),
    ("n-best 2 + 120 chars of KB hints in the prompt", 2, 2, 120, None),
]


def decoder_costs(brain: Brain, repeats: int) -> None:
    settings = load_settings()
    audio = []
    for clip in load_clips(Path("../shared/audio/calls-dev")):
        pcm = telephone_path(clip.pcm, "alaw")
        start, end = speech_start_s(clip.pcm), speech_end_s(clip.pcm)
        audio.append(pcm[int(max(0, start - 0.2) * 16000) * 2 : int((end + 0.1) * 16000) * 2])
    engines = []
    for name, beam, n_best, chars, hints in STEPS:
        update = {"beam_size": beam, "n_best": n_best, "hint_prompt_chars": chars,
                  "parallel_decodes": 1}  # fmt: skip
        engine = WhisperEngine(settings.asr.whisper.model_copy(update=update),
                               settings.asr.endpointing, settings.models_dir)  # fmt: skip
        engines.append((name, engine, engine.prompt(hints or brain.hints())))
        engine.decode(audio[0], engines[-1][2])  # warm
    times: dict[str, list[float]] = {name: [] for name, *_ in STEPS}
    for _ in range(repeats):
        for pcm in audio:
            for name, engine, prompt in engines:
                began = time.perf_counter()
                engine.decode(pcm, prompt)
                times[name].append((time.perf_counter() - began) * 1000)
    base = times[STEPS[0][0]]
    for name, *_ in STEPS:
        diff = statistics.median(a - b for a, b in zip(times[name], base, strict=True))
        print(json.dumps({"step": name, "decode_ms_p50": round(statistics.median(times[name]), 1),
                          "paired_diff_ms_p50": round(diff, 1)}, ensure_ascii=False))  # fmt: skip
    for _, engine, _ in engines:
        engine.close()


def bot_costs(brain: Brain) -> None:
    speller = brain.speller
    for fixture in sorted(Path("tests/bot/data").glob("whisper-nbest-*.json")):
        cases = [c for c in heard_eval.load_recorded(fixture) if c.hypotheses]
        out: dict[str, object] = {"fixture": fixture.name}
        for name, nbest, sound in (("classify first hypothesis (before)", False, False),
                                   ("+ respelling", False, True), ("n-best", True, False),
                                   ("n-best + respelling (now)", True, True)):  # fmt: skip
            brain.speller = speller if sound else None
            took = []
            for _ in range(3):
                for case in cases:
                    hyps = case.hypotheses if nbest else ()
                    turn = Utterance(case.hypotheses[0].text, case.confidence, hyps)
                    began = time.perf_counter()
                    if name.startswith("classify"):
                        brain.classify(turn.text)
                    else:
                        brain.understand(turn)
                    took.append((time.perf_counter() - began) * 1000)
            out[name] = round(statistics.median(took), 2)
        brain.speller = speller
        print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    city = Brain.load(BotPaths(kb=Path("../shared/eval/kb.yaml")))
    bot_costs(city)
    decoder_costs(city, int(sys.argv[1]) if len(sys.argv) > 1 else 1)
