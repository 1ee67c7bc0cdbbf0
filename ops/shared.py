"""The fixtures the ops commands fall back on when none is given: the team's recorded
callers and sample knowledge base in ``../shared`` beside the checkout (they do not ship
with the project). The defaults live here, at the commands' edge: ``testkit`` takes its
clips, knowledge base and transcripts as parameters."""

from __future__ import annotations

from pathlib import Path

DEV_CALLS = "../shared/audio/calls-dev"  # WAV clips and their transcripts.tsv
SAMPLE_KB = "../shared/eval/kb.yaml"


def shared_path(relative: str) -> Path:
    """``relative`` from the working directory, else beside the repository."""
    here = Path(relative)
    if here.exists():
        return here
    return Path(__file__).resolve().parent.parent / relative


def dev_calls() -> Path:
    """The recorded callers (``--audio`` of bench, soak, drills and demo when not given)."""
    return shared_path(DEV_CALLS)


def sample_kb() -> Path:
    """The sample knowledge base the recorded callers ask about."""
    return shared_path(SAMPLE_KB)
