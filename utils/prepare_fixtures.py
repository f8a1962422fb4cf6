"""Re-create the summarization data under tests/fixtures/ from the project's shared data folder.

The files it writes are committed; this script documents exactly how they were made (see
tests/fixtures/summarization/PROVENANCE.md) and re-makes them byte for byte:

    python utils/prepare_fixtures.py --shared_data ../shared/data
"""

import argparse
import json
import os
import shutil

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures")


def scitldr_records(path: str) -> list[dict]:
    """SciTLDR-A records as {"text": abstract sentences joined by spaces, "summary": [all TLDRs]}."""
    with open(path, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return [{"text": " ".join(row["source"]), "summary": row["target"]} for row in rows]


def write_jsonl(path: str, records: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared_data", default="../shared/data", help="The shared data folder (has PROVENANCE.md).")
    args = parser.parse_args()

    xsum_dir = os.path.join(FIXTURES, "summarization", "xsum")
    os.makedirs(xsum_dir, exist_ok=True)
    shutil.copyfile(
        os.path.join(args.shared_data, "xsum_sample", "sample.json"), os.path.join(xsum_dir, "sample.json")
    )

    scitldr_dir = os.path.join(FIXTURES, "summarization", "scitldr")
    os.makedirs(scitldr_dir, exist_ok=True)
    dev = scitldr_records(os.path.join(args.shared_data, "scitldr_a", "dev.jsonl"))
    test = scitldr_records(os.path.join(args.shared_data, "scitldr_a", "test.jsonl"))
    write_jsonl(os.path.join(scitldr_dir, "train.jsonl"), dev[:500])
    write_jsonl(os.path.join(scitldr_dir, "validation.jsonl"), dev[500:])
    write_jsonl(os.path.join(scitldr_dir, "test.jsonl"), test[:200])
    print(f"wrote {xsum_dir} and {scitldr_dir}")


if __name__ == "__main__":
    main()
