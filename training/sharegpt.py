"""Export expert data to the ShareGPT layout that LLaMA-Factory reads.

Writes ``sharegpt.json`` (a list of ``{"conversations": [{"from": "human"|"gpt",
"value": ...}], "images": [...]}``, each ``<image>`` tag standing for the next listed
image) and ``dataset_info.json`` registering it as ``panoseek_experts``, next to the
images, so LLaMA-Factory finds both with ``dataset_dir`` set to the folder. Each row is
one decision: train it with ``mask_history: true`` so the loss falls on the last reply
only, as ``panoseek train sft`` does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from panoseek.training.dataset import read_rows

SHAREGPT_FILE = "sharegpt.json"
DATASET_INFO = {
    "panoseek_experts": {
        "file_name": SHAREGPT_FILE,
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "images": "images"},
    }
}
_ROLES = {"user": "human", "assistant": "gpt", "system": "system"}


def sharegpt_row(row: dict[str, Any]) -> dict[str, Any]:
    """One row as a ShareGPT conversation: text parts joined, image entries as ``<image>``."""
    conversations = []
    for message in row["messages"]:
        content = message["content"]
        if not isinstance(content, str):
            content = "".join("<image>" if part.get("type") == "image" else part.get("text") or "" for part in content)
        conversations.append({"from": _ROLES[message["role"]], "value": content})
    return {"conversations": conversations, "images": list(row["images"])}


def export_sharegpt(folder: str | Path) -> Path:
    """Write ``sharegpt.json`` and ``dataset_info.json`` into an expert-data folder."""
    folder = Path(folder)
    rows = [sharegpt_row(row) for row in read_rows(folder)]
    path = folder / SHAREGPT_FILE
    path.write_text(json.dumps(rows, ensure_ascii=False) + "\n", encoding="utf-8")
    (folder / "dataset_info.json").write_text(json.dumps(DATASET_INFO, indent=2) + "\n", encoding="utf-8")
    return path
