"""The example notebook runs top to bottom in a real Jupyter kernel (nbclient), on the first
300 images of CIFAR-10 for one epoch, and prints the tutorial's report."""

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "python" / "minivggnet_cifar10.ipynb"


def test_the_example_notebook_trains_and_reports(monkeypatch):
    monkeypatch.setenv("MINIVGG_NOTEBOOK_LIMIT", "300")
    monkeypatch.setenv("MINIVGG_NOTEBOOK_EPOCHS", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3").execute()
    text = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert "(300, 32, 32, 3) (300, 10) (300, 32, 32, 3) (300, 10)" in text
    assert "Total params: 2,171,178" in text
    assert "weighted avg" in text
    assert "300/300" not in text  # batches are counted, not images
    assert "5/5 [" in text  # 300 images in batches of 64: five steps
