"""ROUGE and BLEU through the same code as the project's other scripts (rouge_score + NLTK, sacrebleu)."""

import nltk
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU

from .utils import UsageError


# Copied from examples.pytorch.summarization.run_summarization.split_sentences
def split_sentences(text: str) -> str:
    """One sentence per line: rougeLsum scores summary-level LCS over these lines (NLTK punkt, English)."""
    return "\n".join(nltk.sent_tokenize(text.strip()))


# Copied from examples.pytorch.summarization.run_summarization.check_sentence_splitter
def check_sentence_splitter() -> None:
    """Fail before training, not after it, when NLTK's offline `punkt_tab` data is missing."""
    try:
        nltk.data.find("tokenizers/punkt_tab/english/")
    except LookupError as error:
        raise UsageError(
            "NLTK data 'punkt_tab' (sentence splitter for rougeLsum) is missing: run "
            "`python utils/install_nltk_data.py` from this repo (offline), or `python -m nltk.downloader punkt_tab`"
        ) from error


# Copied from examples.pytorch.summarization.run_summarization.compute_rouge
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


def compute_bleu(predictions: list[str], references: list[str]) -> dict[str, float | str]:
    """Corpus BLEU (sacrebleu defaults: 13a tokenisation), rounded to 4 places, with its signature."""
    bleu = BLEU()
    score = bleu.corpus_score(predictions, [references])
    return {"bleu": round(score.score, 4), "bleu_signature": str(bleu.get_signature())}
