"""Speech to text for telephone calls: a VAD endpointer and two engines (Vosk, Whisper).

One engine (the loaded model) per process, one cheap recogniser per call:

    engine = asr.load_engine(settings.asr)
    rec = engine.recognizer(hints=["社保", "公积金"])
    for frame in frames_16k_20ms:
        for event in rec.accept(frame):
            ...  # SpeechStarted (barge-in), Transcript(is_final=False|True)
"""

from asr.base import AsrError, AsrEvent, Recognizer, SpeechEngine, SpeechStarted, Transcript

__all__ = ["AsrError", "AsrEvent", "Recognizer", "SpeechEngine", "SpeechStarted", "Transcript"]
