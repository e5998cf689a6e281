"""The published runs, runs/s10-seed<n>.json, as the tests read them."""
import json
from pathlib import Path


def read_records(folder) -> list:
    """The records in `folder`, by seed, each with its path."""
    paths = Path(folder).glob("s10-seed*.json")
    records = [json.loads(path.read_text()) | {"path": str(path)} for path in paths]
    return sorted(records, key=lambda record: record["settings"]["seed"])
