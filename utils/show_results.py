"""Print where a run's outputs are and its ROUGE/BLEU table with the metrics' signatures, from all_results.json.

python utils/show_results.py outputs/demo-summarization
"""

import json
import os
import sys

SCORES = ("rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "chrf", "gen_len", "loss", "samples")


def format_cell(value) -> str:
    if value is None:
        return f"{'-':>12}"
    return f"{value:>12d}" if isinstance(value, int) else f"{value:>12.4f}"


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(f"usage: python {sys.argv[0]} OUTPUT_DIR")
    output_dir = sys.argv[1]
    results_path = os.path.join(output_dir, "all_results.json")
    if not os.path.isfile(results_path):
        sys.exit(f"error: {results_path} not found; did the run finish?")
    with open(results_path, encoding="utf-8") as handle:
        results = json.load(handle)

    print(f"\nOutputs in {os.path.abspath(output_dir)}:")
    for name in sorted(os.listdir(output_dir)):
        print(f"  {name}{'/' if os.path.isdir(os.path.join(output_dir, name)) else ''}")
    stages = [stage for stage in ("eval", "predict") if any(key.startswith(f"{stage}_") for key in results)]
    print(f"\n{'metric':<12}" + "".join(f"{stage:>12}" for stage in stages))
    for score in SCORES:
        values = [results.get(f"{stage}_{score}") for stage in stages]
        if any(value is not None for value in values):
            cells = "".join(format_cell(value) for value in values)
            print(f"{score:<12}{cells}")
    # How the scores were computed (ROUGE backend, sacrebleu settings): under the table, one line per stage.
    for key in sorted(key for key in results if key.endswith("_signature")):
        print(f"{key}: {results[key]}")
    if "train_loss" in results:
        print(f"\ntrain_loss {results['train_loss']:.4f} over {results.get('train_samples')} examples")


if __name__ == "__main__":
    main()
