"""ROUGE and BLEU through the same code as the project's other scripts (rouge_score + NLTK, sacrebleu).

ROUGE is `rouge_scoring.py`, the folder's copy of the summarization scripts' module (next to the scripts, kept
identical by `utils/check_copies.py`).
"""

from sacrebleu.metrics import BLEU

from rouge_scoring import check_sentence_splitter, compute_rouge, split_sentences

__all__ = ["check_sentence_splitter", "compute_bleu", "compute_rouge", "split_sentences"]


def compute_bleu(predictions: list[str], references: list[str]) -> dict[str, float | str]:
    """Corpus BLEU (sacrebleu defaults: 13a tokenisation), rounded to 4 places, with its signature."""
    bleu = BLEU()
    score = bleu.corpus_score(predictions, [references])
    return {"bleu": round(score.score, 4), "bleu_signature": str(bleu.get_signature())}
