"""The committed results agree with each other: the README's seeds table quotes the run records in
runs/ (final-epoch accuracy, LR bounds, seconds per epoch, mean +- sample std and minimum over the
finished runs), and its tables of one run are the committed notebook's."""
import json
import re
from pathlib import Path

import numpy as np
import pytest

from utils import gallery
from tests.records import read_records
from tests.study import difference_noise, paired_table, read_study, study_table

ROOT = Path(__file__).resolve().parents[1]
RECORDS = [{**r, "seed": r["settings"]["seed"], "finished": True, "epochs": len(r["history"])}
           for r in read_records(ROOT / "runs")]


def markdown_rows(table: str) -> list:
    """The cells of each body row of a markdown table (header and rule line skipped)."""
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()[2:]]


def readme_seed_rows() -> dict:
    """seed -> the cells of its row in the README's seeds table."""
    text = (ROOT / "README.md").read_text()
    table = text[text.index("| seed | weight decay |"):].split("\n\n")[0]
    return {int(cells[0]): cells for cells in markdown_rows(table)}


def recipe(record) -> str:
    """The weight decay a run trained with, as the seeds table names it: what tells the recipes apart."""
    settings = record["settings"]
    return f"{'decoupled' if settings['decoupled_weight_decay'] else 'L2'} {settings['weight_decay']:g}"


def readme_results() -> str:
    text = (ROOT / "README.md").read_text()
    return text[text.index("## Results"):]


def notebook_cells() -> list:
    return json.loads((ROOT / "S10.ipynb").read_text())["cells"]


def notebook_output(code: str) -> str:
    """What the committed notebook's one code cell whose source contains `code` printed."""
    (cell,) = [c for c in notebook_cells() if c["cell_type"] == "code" and code in "".join(c["source"])]
    return "".join("".join(o["text"]) for o in cell["outputs"] if o["output_type"] == "stream")


def test_runs_holds_the_seed_study():
    assert [r["seed"] for r in RECORDS][:1] == [1] and RECORDS[0]["finished"]


def ema_cell(row) -> str:
    """A README cell for the EMA accuracy of one epoch's row, "-" for runs recorded before the EMA."""
    return f"{100 * row['ema_acc']:.2f}%" if "ema_acc" in row else "-"


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: f"seed{r['seed']}")
def test_the_readme_row_of_each_seed_quotes_its_record(record):
    rows = readme_seed_rows()
    assert record["seed"] in rows, f"README's seeds table has no row for seed {record['seed']}"
    _, decay, bounds, final, ema, best, _, seconds = rows[record["seed"]]
    assert decay == recipe(record)
    lr = record["lr_test"]
    assert bounds.startswith(f"{lr['lr_max']:.2e} / {lr['lr_min']:.2e}")
    history = record["history"]
    if record["finished"]:
        assert final == f"**{100 * history[-1]['test_acc']:.2f}%** (epoch {record['epochs']})"
        assert ema == ema_cell(history[-1])
        top = max(history, key=lambda row: row["test_acc"])
        assert best == f"{100 * top['test_acc']:.2f}% (epoch {top['epoch']})"
        assert seconds == f"{gallery.seconds_per_epoch(history):.0f}"
    else:
        assert "%" not in final, "an unfinished run has no final-epoch accuracy to quote"


def test_the_readme_spread_of_each_recipe_is_that_of_its_finished_records():
    text = readme_results()
    for name in {recipe(r) for r in RECORDS}:
        finished = [r for r in RECORDS if r["finished"] and recipe(r) == name]
        accs = 100 * np.array([r["history"][-1]["test_acc"] for r in finished])
        if len(accs) < 2:
            assert f"{name}: mean" not in text, "a spread needs two finished runs"
            continue
        assert (f"{name}: mean {accs.mean():.2f}% +- {accs.std(ddof=1):.2f} (sample std), "
                f"min {accs.min():.2f}%") in text
        for r, acc in zip(finished, accs):
            if acc < 90:
                assert f"seed {r['seed']}" in text and f"{acc:.2f}%" in text
    assert "cleared 90%" in text, "the README says in one sentence whether every seed cleared 90%"


def benchmark(name) -> dict:
    result = json.loads((ROOT / "benchmarks" / "results" / name).read_text())
    rows = {}
    for row in result["rows"]:  # the first row of each config (the model-only step comes first)
        rows.setdefault(row["config"], row)
    return rows, result["info"]


def test_the_performance_figures_are_those_of_the_committed_benchmark_results():
    text = (ROOT / "benchmarks" / "README.md").read_text()
    rows, info = benchmark("cpu-intel-6-167-amx.json")
    fp32 = rows["fp32 channels_last"]["images_per_s"]
    bf16 = rows["bf16 autocast + channels_last"]["images_per_s"]
    assert f"| Intel Xeon, 6/167, AMX | {fp32} img/s | {bf16} img/s | bf16 |" in text
    reference = rows["reference loader (the committed runs'), workers=0, 1 thread"]["images_per_s"]
    ours = rows["workers=0, 1 thread"]["images_per_s"]
    assert f"{ours:,.0f} img/s against {reference:,.0f}" in text and f"({ours / reference:.1f}x)" in text
    loop = next(r for c, r in rows.items() if c.startswith("bf16 autocast + channels_last, workers="))
    assert f"real training loop {loop['images_per_s']}" in text
    assert f"{loop['fraction_of_ceiling']:.2f} of the" in text
    assert f"{info['predicted_24_epochs_s_real'] / 60:.0f} minutes" in text
    rows, _ = benchmark("cpu-amd-25-1-avx2.json")
    emulated = rows["bf16 autocast + channels_last (emulated bf16)"]["images_per_s"]
    assert f"| {rows['fp32 channels_last']['images_per_s']} img/s | {emulated} img/s (emulated" in text
    rows, _ = benchmark("cpu-intel-6-207-avx512bf16.json")
    fp32 = rows["fp32 channels_last"]["images_per_s"]
    assert f"{fp32} img/s | 52-63 img/s | fp32" in text.replace("71.1-", "")


def test_the_study_table_is_that_of_the_study_records():
    """The recipe-study table of runs/study/README.md is `study_table` of the records in runs/study/,
    with the noise of the seeds the study was judged against: seeds 1-3, the recipe's runs committed
    before it started (a later seed does not move the bar after the verdict)."""
    text = (ROOT / "runs" / "study" / "README.md").read_text()
    block = text[text.index("# Recipe study"):].split("```\n")[1]
    judged_against = [r for r in RECORDS if r["seed"] in (1, 2, 3)]
    assert len(judged_against) == 3 and all(r["finished"] for r in judged_against)
    noise = difference_noise([r["history"][-1]["test_acc"] for r in judged_against])
    assert block == study_table(read_study(ROOT / "runs" / "study"), noise) + "\n"
    assert "a change counts beyond 0.69" in block


def test_the_reading_of_the_study_quotes_its_table():
    """Every figure in the prose under the study table is one of the table's."""
    section = (ROOT / "runs" / "study" / "README.md").read_text().split("# Second study")[0]
    _, block, reading = section.split("```\n")[:3]
    figures = re.findall(r"\d+\.\d+", reading)
    assert figures and [f for f in figures if f not in block] == []


def shown_seed() -> int:
    """The seed of the run whose outputs the committed notebook shows (its set-up line names it)."""
    return int(re.search(r"\bseed (\d+)$", notebook_output("describe(").strip()).group(1))


def epoch_rows(record) -> list:
    """The README's every-epoch table rows, from a run record."""
    return [f"| {e['epoch']} | {e['lr']:.2e} | {e['train_loss']:.3f} | {100 * e['train_acc']:.2f}% | "
            f"{e['test_loss']:.3f} | {100 * e['test_acc']:.2f}% | {ema_cell(e)} | {round(e['seconds'])} |"
            for e in record["history"]]


def test_the_notebook_introduction_names_the_seed_and_the_data_of_its_outputs():
    intro = "".join(notebook_cells()[0]["source"]).replace("\n", " ")
    assert f"seed {shown_seed()}'s full run on CIFAR-10 (JPEG copy)" in intro


def test_the_readme_every_epoch_table_is_that_of_the_run_the_notebook_shows():
    seed = shown_seed()
    (record,) = [r for r in RECORDS if r["seed"] == seed]
    assert f"### Seed {seed}: the run the notebook shows" in readme_results()
    details = readme_results().split("<details><summary>Every epoch")[1].split("</details>")[0]
    rows = [line for line in details.splitlines() if re.match(r"\| \d+ \|", line)]
    assert rows == epoch_rows(record)


def test_the_readme_per_class_table_is_the_notebook_s():
    shown = notebook_output("per_class_table")
    notebook = [re.split(r"\s{2,}", line.strip()) for line in shown.strip().splitlines()[1:]]
    table = readme_results().split("| class | correct / total | accuracy |")[1].split("\n\n")[0]
    readme = markdown_rows(table)
    assert len(readme) == 11 and readme == notebook


def test_the_second_study_table_is_that_of_its_records_and_no_study_run_read_the_test_set():
    text = (ROOT / "runs" / "study" / "README.md").read_text().split("# Second study")[1]
    assert text.split("```\n")[1] == paired_table(ROOT / "runs" / "study" / "paired") + "\n"
    for path in (ROOT / "runs" / "study" / "paired").glob("*.json"):
        record = json.loads(path.read_text())
        assert record["evaluated_on"] == "validation" and record["settings"]["validation"] == 5000, path.name
        assert all("ema_acc" in row for row in record["history"]), path.name
