"""The notebooks in notebooks/: they run top to bottom at tiny sizes and show what they promise,
and they are kept in git without outputs.

Each notebook's first code cell is tagged ``parameters`` (papermill's convention); the tests append
their own values to it, then execute the notebook with nbclient in a kernel of this interpreter,
with a temporary folder as the working directory.
"""

import base64
import html
import json
import re
import sys
from pathlib import Path

import pytest

from conftest import FAST

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
KERNEL = "electra-lit-tests"
CELL_TIMEOUT = 300  # seconds per cell: generous for a loaded 2-core machine


# ------------------------------------------------------------------ kept without outputs
def notebook_files():
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def test_the_notebooks_exist():
    assert [p.name for p in notebook_files()] == ["01_quickstart.ipynb", "02_finetune.ipynb"]


@pytest.mark.parametrize("path", notebook_files(), ids=lambda p: p.name)
def test_notebook_is_saved_without_outputs(path):
    """Outputs, execution counts, timings and widget state stay out of git (they are large and change
    on every run); clear them before committing, e.g. "Clear All Outputs" in Jupyter, or
    ``jupyter nbconvert --clear-output --inplace notebooks/*.ipynb``."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    assert notebook["nbformat"] == 4
    assert "widgets" not in notebook.get("metadata", {}), f"{path.name}: saved widget state"
    for number, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        where = f"{path.name}, cell {number}"
        assert cell.get("outputs") == [], f"{where} has outputs"
        assert cell.get("execution_count") is None, f"{where} has an execution count"
        assert "execution" not in cell.get("metadata", {}), f"{where} has execution timings"


@pytest.mark.parametrize("path", notebook_files(), ids=lambda p: p.name)
def test_first_code_cell_holds_the_parameters(path):
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    first = next(c for c in notebook.cells if c.cell_type == "code")
    assert "parameters" in first.metadata.get("tags", [])


# ------------------------------------------------------------------ running them
@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """A kernel spec for this very interpreter, under a name of its own.

    ``python3`` could resolve to a spec in the user's Jupyter folders that starts another Python;
    a spec written here, found first through JUPYTER_PATH, cannot."""
    pytest.importorskip("ipykernel")
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "electra_lit tests",
                "language": "python",
            }
        )
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(root))
        yield KERNEL


def execute(name: str, cwd: Path, kernel_name: str, **parameters):
    """Run notebooks/NAME in ``cwd`` with ``parameters`` appended to its parameters cell."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    cell.source += "\n# set by tests/test_notebooks.py\n" + "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
    client = nbclient.NotebookClient(
        notebook, kernel_name=kernel_name, timeout=CELL_TIMEOUT, resources={"metadata": {"path": str(cwd)}}
    )
    client.execute()
    return notebook


def outputs(notebook, kind: str) -> list:
    """Every output of the given MIME type (``stdout`` for printed text), in order."""
    found = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if kind == "stdout" and output.output_type == "stream" and output.name == "stdout":
                found.append(output.text)
            elif output.output_type in ("display_data", "execute_result") and kind in output.data:
                found.append(output.data[kind])
    return found


def png_figures(notebook) -> list[tuple[bytes, str]]:
    """(PNG bytes, matplotlib's text description) of every figure shown."""
    figures = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "display_data" and "image/png" in output.data:
                figures.append((base64.b64decode(output.data["image/png"]), output.data.get("text/plain", "")))
    return figures


def printed_line(notebook, prefix: str) -> str:
    lines = [line for text in outputs(notebook, "stdout") for line in text.splitlines() if line.startswith(prefix)]
    assert lines, f"no printed line starts with {prefix!r}"
    return lines[-1]


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory, cache_dir, kernel):
    """01_quickstart.ipynb run at the tests' small sizes: 6 steps, validating twice."""
    cwd = tmp_path_factory.mktemp("notebooks")
    overrides = [*FAST, f"cache_dir={cache_dir}", "trainer.val_check_interval=3", "trainer.limit_val_batches=2"]
    notebook = execute(
        "01_quickstart.ipynb", cwd, kernel, MAX_STEPS=6, RUN_DIR="runs/quickstart", EXTRA_OVERRIDES=overrides
    )
    return notebook, cwd


SPAN = re.compile(
    r'<span class="token" data-original="([^"]*)" data-p="([0-9.]+)" data-replaced="([01])"'
    r'[^>]*style="background-color: rgb\(255, (\d+), (\d+)\);'
)


@pytest.mark.slow
def test_quickstart_pretrains_and_shows_a_sentence_and_the_losses(quickstart):
    notebook, cwd = quickstart
    run_dir = cwd / "runs" / "quickstart"
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()

    tokens = printed_line(notebook, "tokens:").split()[1:]
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and len(tokens) >= 4

    # the coloured sentence: one span per token of the sentence, shaded by the discriminator's p(replaced)
    sentence = [h for h in outputs(notebook, "text/html") if 'class="rtd-sentence"' in h]
    assert len(sentence) == 1
    spans = SPAN.findall(sentence[0])
    assert [html.unescape(original) for original, *_ in spans] == tokens
    for _, p, _, green, blue in spans:
        assert 0.0 <= float(p) <= 1.0
        assert int(green) == int(blue) == round(255 * (1 - 0.8 * float(p)))
    replaced = sum(flag == "1" for _, _, flag, _, _ in spans)
    assert printed_line(notebook, f"{replaced} of {len(tokens)} tokens replaced")
    assert sentence[0].count("<s>") == replaced  # each replaced token shows its original struck through

    # the table of the masked positions, then the loss plot from metrics.csv (4 panels)
    assert any("p(replaced)" in h and "sampled" in h for h in outputs(notebook, "text/html"))
    figures = png_figures(notebook)
    assert len(figures) == 1
    png, description = figures[0]
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert "5 Axes" in description  # three losses, AUC and gain
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    for name in ("train/loss", "val/loss"):
        column = header.index(name)
        assert sum(bool(row.split(",")[column]) for row in rows[1:]) >= 2, f"too few {name} points to plot"


@pytest.mark.slow
def test_finetune_reports_dev_metrics_and_a_confusion_matrix(quickstart, kernel):
    _, cwd = quickstart
    notebook = execute(
        "02_finetune.ipynb",
        cwd,
        kernel,
        QUICKSTART_RUN_DIR="runs/quickstart",
        N_TRAIN=96,
        N_DEV=48,
        EPOCHS=2,
        EXTRA_OVERRIDES=["batch_size=16"],
    )
    assert printed_line(notebook, "fine-tuning from") == "fine-tuning from runs/quickstart/checkpoints/last.ckpt"
    assert len((cwd / "runs" / "notebook_synthetic_sst2" / "train.tsv").read_text().splitlines()) == 97

    results = json.loads((cwd / "runs" / "notebook_finetune" / "results.json").read_text())
    assert results["task"] == "sst2" and len(results["epochs"]) == 2
    accuracy = results["metrics"]["accuracy"]
    assert printed_line(notebook, "  dev accuracy:") == f"  dev accuracy: {accuracy:.4f}"
    assert float(printed_line(notebook, "dev accuracy of the majority label:").split(":")[1].split(";")[0]) >= 0.5

    # the confusion matrix counts all 48 dev sentences and gives back the reported accuracy
    line = printed_line(notebook, "dev accuracy from the confusion matrix:")
    match = re.fullmatch(r"dev accuracy from the confusion matrix: ([0-9.]+) \((\d+) of 48\)", line)
    assert match and float(match[1]) == pytest.approx(accuracy, abs=1e-4)
    assert int(match[2]) == round(accuracy * 48)
    figures = png_figures(notebook)
    assert len(figures) == 1
    png, description = figures[0]
    assert png.startswith(b"\x89PNG") and "2 Axes" in description  # the matrix and its colour bar
