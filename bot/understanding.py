"""Learned understanding: one calibrated model for request type and knowledge-base entry.

Hand-tuned cue lists fitted the sentences they were tuned on and missed a third of new
callers. This model learns from a labelled corpus instead (``bot/data/corpus/*.tsv``,
thousands of caller phrasings written for variety) plus the city's own knowledge base:

* **labels**: ``kb:<id>`` for every entry of the active knowledge base, the work-order
  types (complaint, help, report, suggestion, praise), ``human``, ``abusive``,
  ``emergency`` and ``unknown`` (a question this knowledge base cannot answer);
* **features**: character 1-3-grams of the normalised text and fuzzy toneless pinyin
  1-3-grams (so 公基金 reads as 公积金: a recogniser's homophone keeps its sound);
* **learning**: scikit-learn's linear support-vector machine (``LinearSVC``: the best
  cross-validated accuracy of the linear learners we tried, and under a second to
  train, where multinomial logistic regression took twenty); its scores become
  probabilities through a softmax whose temperature is fitted on out-of-fold scores;
* **bands**: the temperature and the answer, confirm and emergency thresholds are
  fitted on out-of-fold predictions, i.e. on phrasings the model that scored them never
  saw (see :func:`fit_bands`).

A city's knowledge base rarely uses the sample's ids. The corpus is grouped by *intent*
(``kb:<sample id>`` and ``intent:<name>`` lines); each intent is linked to the city's
entry that asks the same thing, decided by a model trained on the corpus alone reading
the entry's own question and ``also`` phrasings (both must pick each other). Linked
intents lend their phrasings to the entry; intents the city's knowledge base lacks
become examples of ``unknown``, which is what keeps the bot from answering them.

Training is cached on disk by a hash of everything it reads, so a controller restart
costs nothing and a manager's knowledge-base edit retrains once.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import pickle
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import numpy as np
import sklearn
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.svm import LinearSVC

from bot.kb import KnowledgeBase
from bot.text import normalise, syllables
from hotline.errors import UserFacingError

log = logging.getLogger(__name__)

MODEL_VERSION = "understanding-1"
TYPE_LABELS = ("complaint", "help", "report", "suggestion", "praise")
OTHER_LABELS = ("human", "abusive", "emergency", "unknown")
KB_PHRASING_WEIGHT = 3.0  # the city's own question/also phrasings count more than corpus lines
HEARD_WEIGHT = 0.5  # a heard copy of a line: half a written one (there are two per line)
LINK_MIN_PROB = 0.45  # an intent lends its phrasings to an entry only when this sure
UNLINKED_NEAR = 0.15  # an unlinked intent this close to an entry is dropped, not "unknown"


class CorpusError(UserFacingError, ValueError):
    """A corpus file that cannot be used; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    label: str
    weight: float = 1.0
    # For a *heard* example (what the recogniser wrote for a spoken corpus line): the line
    # it was spoken from. Cross-validation keeps the two in one fold.
    said: str = ""

    @property
    def group(self) -> str:
        return self.said or self.text


@dataclass(frozen=True, slots=True)
class Bands:
    """Where the bot answers, confirms, or declines, on the top label's probability.

    ``answer``: a knowledge-base entry at or above this is read out at once; between
    ``confirm`` and ``answer`` the bot asks 「您是想问……吗？」; below it does not answer.
    ``emergency``: an emergency probability at or above this hands over at once;
    between ``emergency_ask`` and it, the bot asks whether a life is in danger.
    """

    answer: float = 0.6
    confirm: float = 0.3
    emergency: float = 0.35
    emergency_ask: float = 0.12


@dataclass(frozen=True, slots=True)
class Prediction:
    """The model's reading of one utterance: labels by probability, best first."""

    ranked: tuple[tuple[str, float], ...]

    @property
    def label(self) -> str:
        return self.ranked[0][0] if self.ranked else "unknown"

    @property
    def probability(self) -> float:
        return self.ranked[0][1] if self.ranked else 0.0

    def prob(self, label: str) -> float:
        for name, p in self.ranked:
            if name == label:
                return p
        return 0.0

    def best_entry(self, exclude: Iterable[str] = ()) -> tuple[str, float] | None:
        """The most probable knowledge-base entry id (not in ``exclude``) and its probability."""
        skip = set(exclude)
        for name, p in self.ranked:
            if name.startswith("kb:") and name[3:] not in skip:
                return name[3:], p
        return None


# ---- the corpus ----


def corpus_dir() -> Path:
    return Path(str(resources.files("bot").joinpath("data/corpus")))


def load_corpus(folder: str | Path | None = None) -> list[Example]:
    """Every ``text<TAB>label`` line of the ``*.tsv`` files in ``folder`` (sorted by name)."""
    folder = Path(folder) if folder is not None else corpus_dir()
    files = sorted(folder.glob("*.tsv"))
    if not files:
        raise CorpusError(f"corpus {folder}: no .tsv files")
    examples: list[Example] = []
    for path in files:
        examples += read_examples(path)
    return examples


def heard_dir(corpus: str | Path | None = None) -> Path:
    """Heard copies of a corpus live in its ``heard/`` folder (``hotline clips heard``)."""
    return (Path(corpus) if corpus is not None else corpus_dir()) / "heard"


def load_heard(corpus: str | Path | None = None) -> list[Example]:
    """Every ``heard<TAB>label<TAB>said`` line of ``<corpus>/heard/*.tsv`` (none: empty).

    What the call path's recogniser wrote for a corpus line spoken over a phone line,
    labelled as that line: it teaches the model Whisper's habits (``ops.heard``). A line
    heard alike at two speeds is one example."""
    out: list[Example] = []
    seen: set[tuple[str, str, str]] = set()
    for path in sorted(heard_dir(corpus).glob("*.tsv")):
        what = f"heard {path.name}"
        for number, fields in tsv_rows(path, what, ("heard", "label", "said"), CorpusError):
            heard, label, said = fields
            _check_label(label, what, number)
            if (heard, label, said) not in seen:
                seen.add((heard, label, said))
                out.append(Example(heard, label, HEARD_WEIGHT, said))
    return out


def tsv_pairs(
    path: Path, what: str, second: str, error: type[Exception], header: bool = False
) -> list[tuple[int, str, str]]:
    """The ``text<TAB>{second}`` lines of a file the project reads (corpus, eval cases,
    department cases) as (line number, text, second): see :func:`tsv_rows`."""
    rows = tsv_rows(path, what, ("text", second), error, header)
    return [(number, text, value) for number, (text, value) in rows]


def tsv_rows(
    path: Path, what: str, columns: Sequence[str], error: type[Exception], header: bool = False
) -> list[tuple[int, tuple[str, ...]]]:
    """The lines of a tab-separated file the project reads as (line number, fields), one
    field per name in ``columns``, blank and ``#`` lines skipped; ``header``: a first line
    naming the columns is a header. A malformed line raises ``error`` naming ``what`` and
    the line."""
    shape = "<TAB>".join(columns)
    rows: list[tuple[int, tuple[str, ...]]] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        if header and number == 1 and raw == "\t".join(columns):
            continue
        fields = tuple(part.strip() for part in raw.split("\t"))
        if len(fields) != len(columns) or not all(fields):
            raise error(f"{what}: line {number}: expected '{shape}'")
        rows.append((number, fields))
    return rows


def read_examples(path: str | Path) -> list[Example]:
    path = Path(path)
    out: list[Example] = []
    for number, text, label in tsv_pairs(path, f"corpus {path.name}", "label", CorpusError):
        _check_label(label, f"corpus {path.name}", number)
        out.append(Example(text, label))
    return out


def _check_label(label: str, where: str, number: int) -> None:
    if not (label.startswith(("kb:", "intent:")) or label in TYPE_LABELS + OTHER_LABELS):
        raise CorpusError(f"{where}: line {number}: unknown label {label!r}")


# ---- features ----


def _sound_analyzer(text: str) -> list[str]:
    """Fuzzy pinyin 1-3-grams (the vectoriser gets the normalised text)."""
    sounds = syllables(text)
    grams = list(sounds)
    grams += [f"{a}_{b}" for a, b in itertools.pairwise(sounds)]
    grams += [f"{a}_{b}_{c}" for a, b, c in zip(sounds, sounds[1:], sounds[2:], strict=False)]
    return grams


class Features:
    """Character n-grams and sound n-grams, TF-IDF weighted, side by side."""

    def __init__(self) -> None:
        # An n-gram seen in one training line only is dropped (min_df=2): the heard copies
        # bring many one-off garbles, and keeping them doubled the model (84 MB against
        # 46 MB) and cost 5 s of training for the same cross-validated accuracy.
        self.chars = TfidfVectorizer(
            analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2, dtype=np.float32
        )
        self.sounds = TfidfVectorizer(
            analyzer=_sound_analyzer, sublinear_tf=True, min_df=2, dtype=np.float32
        )

    def fit_transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        norm = [normalise(t) for t in texts]
        return sparse.hstack(
            [self.chars.fit_transform(norm), self.sounds.fit_transform(norm)], format="csr"
        )

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        norm = [normalise(t) for t in texts]
        return sparse.hstack(
            [self.chars.transform(norm), self.sounds.transform(norm)], format="csr"
        )


# ---- the model ----


@dataclass
class Understanding:
    """A trained model: ``predict(text)`` and the fitted bands."""

    features: Features
    model: LinearSVC
    bands: Bands = field(default_factory=Bands)
    temperature: float = 8.0  # softmax sharpness of the SVM scores (fitted, see fit_bands)
    links: dict[str, str] = field(default_factory=dict)  # corpus intent -> KB entry id
    report: dict[str, object] = field(default_factory=dict)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(str(c) for c in self.model.classes_)

    def predict(self, text: str) -> Prediction:
        return self.predict_many([text])[0]

    def predict_many(self, texts: Sequence[str]) -> list[Prediction]:
        if not texts:
            return []
        scores = self.model.decision_function(self.features.transform(texts))
        probs = softmax(scores, self.temperature)
        labels = self.labels
        out = []
        for row in probs:
            order = np.argsort(-row)[:8]
            out.append(Prediction(tuple((labels[i], float(row[i])) for i in order)))
        return out


def softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    z = np.asarray(scores, dtype=np.float64) * temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _fit(examples: Sequence[Example]) -> tuple[Features, LinearSVC]:
    feats = Features()
    x = feats.fit_transform([e.text for e in examples])
    y = np.array([e.label for e in examples])
    w = np.array([e.weight for e in examples], dtype=np.float64)
    # C chosen by 4-fold cross-validation on the corpus (docs/bot.md); a fixed
    # random_state keeps liblinear's coordinate order, so training is deterministic.
    model = LinearSVC(C=2.0, class_weight="balanced", random_state=0)
    model.fit(x, y, sample_weight=w)
    return feats, model


def training_set(
    kb: KnowledgeBase, corpus: Sequence[Example], unanswered: Iterable[str] = ()
) -> tuple[list[Example], dict[str, str]]:
    """The examples for ``kb``: corpus intents linked to its entries, its own phrasings,
    the request types, and intents it lacks as ``unknown``. Returns (examples, links)."""
    # Links are read from written lines only: a heard copy says the same, less clearly.
    links = link_intents(kb, [ex for ex in corpus if not ex.said])
    near = links.pop("__near__", "")
    dropped = set(near.split("|")) if near else set()
    out: list[Example] = []
    for ex in corpus:
        if ex.label.startswith(("kb:", "intent:")):
            target = links.get(ex.label)
            if target is not None:
                out.append(replace(ex, label=f"kb:{target}"))
            elif ex.label not in dropped:
                out.append(replace(ex, label="unknown"))
        else:
            out.append(ex)
    for entry in kb:
        for text in entry.phrasings():
            out.append(Example(text, f"kb:{entry.id}", KB_PHRASING_WEIGHT))
    for text in unanswered:
        if text.strip():
            out.append(Example(text.strip(), "unknown"))
    return out, links


def link_intents(kb: KnowledgeBase, corpus: Sequence[Example]) -> dict[str, str]:
    """Corpus intent -> entry id of ``kb`` asking the same thing (see the module doc).

    An intent named ``kb:<id>`` links to the entry with that id when ``kb`` has one (the
    sample knowledge base the corpus was written for). Other intents are read by a model
    of the corpus alone; an intent and an entry link when each is the other's best match
    and the probability is at least ``LINK_MIN_PROB``. The key ``__near__`` lists unlinked
    intents that are close to some entry: they are left out rather than taught as unknown.
    """
    ids = {e.id for e in kb}
    intents = sorted({e.label for e in corpus if e.label.startswith(("kb:", "intent:"))})
    links = {i: i[3:] for i in intents if i.startswith("kb:") and i[3:] in ids}
    open_intents = [i for i in intents if i not in links]
    open_entries = [e for e in kb if e.id not in set(links.values())]
    if not open_intents or not open_entries:
        return links
    feats, model = _fit(corpus)
    classes = [str(c) for c in model.classes_]
    col = {c: k for k, c in enumerate(classes)}
    # score[entry][intent] = mean probability of the intent over the entry's phrasings
    scores: dict[str, dict[str, float]] = {}
    corpus_model = Understanding(feats, model)
    for entry in open_entries:
        rows = softmax(model.decision_function(feats.transform(list(entry.phrasings()))),
                       corpus_model.temperature)  # fmt: skip
        probs = rows.mean(axis=0)
        scores[entry.id] = {i: float(probs[col[i]]) for i in open_intents if i in col}
    near: list[str] = []
    for intent in open_intents:
        best_entry = max(scores, key=lambda eid: scores[eid].get(intent, 0.0))
        p = scores[best_entry].get(intent, 0.0)
        best_intent = max(scores[best_entry], key=lambda i: scores[best_entry][i])
        if best_intent == intent and p >= LINK_MIN_PROB:
            links[intent] = best_entry
        elif p >= UNLINKED_NEAR:
            near.append(intent)
    links["__near__"] = "|".join(near)
    return links


def fit_bands(
    examples: Sequence[Example], folds: int = 4, seed: int = 12345
) -> tuple[Bands, float]:
    """Temperature and thresholds from out-of-fold predictions: each example is scored by
    a model trained without it. The temperature minimises the log loss of the true label;
    ``answer`` is the lowest probability above which at most 2 % of entry answers are
    wrong; ``confirm`` the lowest above which at least half of the top entries are right
    (a confirmation question is then more often welcome than not)."""
    scores, classes = out_of_fold_scores(examples, folds, seed)
    truth = np.array([classes.index(e.label) if e.label in classes else -1 for e in examples])
    temperature = _fit_temperature(scores, truth)
    probs = softmax(scores, temperature)
    oof = [Prediction(tuple((classes[i], float(row[i])) for i in np.argsort(-row)[:8]))
           for row in probs]  # fmt: skip
    kb_rows = [(p.best_entry(), ex.label) for ex, p in zip(examples, oof, strict=True)]
    scored = sorted(
        ((b[1], f"kb:{b[0]}" == label) for b, label in kb_rows if b is not None),
        key=lambda r: -r[0],
    )
    answer = _threshold(scored, max_error=0.02, floor=0.35)
    confirm = _threshold(scored, max_error=0.5, floor=0.15)
    pairs = zip(examples, oof, strict=True)
    emergency_rows = sorted(
        ((p.prob("emergency"), ex.label == "emergency") for ex, p in pairs), key=lambda r: -r[0]
    )
    emergency, ask = _emergency_thresholds(emergency_rows)
    bands = Bands(answer=answer, confirm=min(confirm, answer), emergency=emergency,
                  emergency_ask=ask)  # fmt: skip
    return bands, temperature


def _fit_temperature(scores: np.ndarray, truth: np.ndarray) -> float:
    """The softmax temperature with the lowest out-of-fold log loss (a grid: one scalar)."""
    rows = truth >= 0
    best, best_loss = 8.0, float("inf")
    for t in np.geomspace(0.5, 64.0, 36):
        p = softmax(scores[rows], float(t))[np.arange(rows.sum()), truth[rows]]
        loss = float(-np.log(np.clip(p, 1e-12, 1.0)).mean())
        if loss < best_loss:
            best, best_loss = float(t), loss
    return round(best, 4)


def _threshold(scored: list[tuple[float, bool]], max_error: float, floor: float) -> float:
    """Lowest probability t such that, among rows with probability >= t, the share wrong
    stays <= max_error (scanning from the most confident down)."""
    wrong = 0
    best = 1.0
    for total, (prob, right) in enumerate(scored, 1):
        wrong += not right
        if wrong / total <= max_error:
            best = prob
    return round(max(best, floor), 3)


def _emergency_thresholds(rows: list[tuple[float, bool]]) -> tuple[float, float]:
    """Hand over at the probability that still keeps false alarms under 10 %; ask below
    it down to the probability that reaches 94 % of out-of-fold emergencies by the model
    alone, never below 0.1 (the cue list catches more; lower still, the question went to
    one caller in twenty with a blocked drain, which costs more trust than it buys)."""
    positives = sorted(p for p, is_em in rows if is_em)
    if not positives:
        return Bands().emergency, Bands().emergency_ask
    act = _threshold(rows, max_error=0.1, floor=0.2)
    ask = positives[int(len(positives) * 0.06)]
    return round(act, 3), round(min(max(ask, 0.1), act), 3)


def out_of_fold_scores(
    examples: Sequence[Example], folds: int = 4, seed: int = 12345
) -> tuple[np.ndarray, list[str]]:
    """Each example's SVM scores from a model trained on the other folds (columns: the
    returned classes; a class missing from a training fold scores very low). A heard
    example and the line it was spoken from share a fold (``Example.group``)."""
    labels = np.array([e.label for e in examples])
    counts: dict[str, int] = defaultdict(int)
    for label in labels:
        counts[label] += 1
    # Labels rarer than the fold count cannot be stratified: they join every training
    # fold and are predicted in-sample (their own KB phrasings only; a handful of rows).
    strat = np.array([lab if counts[lab] >= folds else "__rare__" for lab in labels])
    classes = sorted(set(labels.tolist()))
    scores = np.full((len(examples), len(classes)), -10.0)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    groups = [e.group for e in examples]
    for train_idx, test_idx in splitter.split(np.zeros(len(strat)), strat, groups):
        feats, model = _fit([examples[i] for i in train_idx])
        cols = [classes.index(str(c)) for c in model.classes_]
        fold = model.decision_function(feats.transform([examples[i].text for i in test_idx]))
        scores[np.ix_(test_idx, cols)] = fold
    return scores, classes


# ---- training with a cache ----


def cache_dir() -> Path:
    root = os.environ.get("HOTLINE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "hotline12345"
    )
    return Path(root) / "understanding"


def _digest(examples: Sequence[Example]) -> str:
    h = hashlib.sha256(f"{MODEL_VERSION}|{sklearn.__version__}|{np.__version__}".encode())
    h.update(Path(__file__).read_bytes())  # a change to this code retrains
    for ex in examples:
        h.update(f"{ex.text}\t{ex.label}\t{ex.weight}\t{ex.said}\n".encode())
    return h.hexdigest()[:32]


def train(
    kb: KnowledgeBase,
    corpus: Sequence[Example] | None = None,
    unanswered: Iterable[str] = (),
    use_cache: bool = True,
) -> Understanding:
    """The model for ``kb`` (from the cache when nothing it reads has changed)."""
    corpus = list(corpus) if corpus is not None else load_corpus()
    key_parts = [*corpus, *(Example(e.id + "|" + "|".join(e.phrasings()), "kb") for e in kb)]
    unanswered = list(unanswered)
    key_parts += [Example(t, "unanswered") for t in unanswered]
    key = _digest(key_parts)
    path = cache_dir() / f"{key}.pkl"
    if use_cache:
        cached = _load_cached(path)
        if cached is not None:
            return cached
    examples, links = training_set(kb, corpus, unanswered)
    examples.sort(key=lambda e: (e.label, e.text, e.weight, e.said))
    bands, temperature = fit_bands(examples)
    feats, model = _fit(examples)
    result = Understanding(feats, model, bands, temperature, links, {"examples": len(examples)})
    if use_cache:
        _save_cached(path, result)
    return result


def _load_cached(path: Path) -> Understanding | None:
    try:
        with path.open("rb") as fh:
            obj = pickle.load(fh)  # our own cache file, written by _save_cached
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return None
    return obj if isinstance(obj, Understanding) else None


def _save_cached(path: Path, model: Understanding) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with tmp.open("wb") as fh:
            pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)
    except OSError as exc:  # a read-only cache only costs a retrain next time
        log.warning("understanding cache not written (%s): %s", path.parent, exc)
