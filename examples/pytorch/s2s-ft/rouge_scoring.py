"""ROUGE as the summarization scripts report it: `rouge_score` F1 x 100 with the Porter stemmer, mean over examples,
texts split into one sentence per line by NLTK punkt for rougeLsum, the best reference of several. Shared by the
summarization scripts (PyTorch and Keras); imports neither torch nor TensorFlow.
"""

import nltk
from rouge_score import rouge_scorer

from seq2seq_checks import UsageError


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


def compute_rouge(predictions: list[str], references: list[str | list[str]]) -> dict[str, float]:
    """ROUGE-1/2/L/Lsum F1 x 100, mean over examples, rounded to 4 places (rouge_score, Porter stemmer).

    Texts are split into one sentence per line first (this only changes rougeLsum). An example with
    several references gets the best score over them, per ROUGE type.
    """
    rouge_types = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    scorer = rouge_scorer.RougeScorer(rouge_types, use_stemmer=True)
    totals = dict.fromkeys(rouge_types, 0.0)
    for prediction, reference in zip(predictions, references, strict=True):
        candidates = [reference] if isinstance(reference, str) else list(reference)
        candidates = [split_sentences(candidate) for candidate in candidates]
        scores = scorer.score_multi(candidates, split_sentences(prediction))
        for rouge_type in rouge_types:
            totals[rouge_type] += scores[rouge_type].fmeasure
    return {key: round(100 * total / max(len(predictions), 1), 4) for key, total in totals.items()}
