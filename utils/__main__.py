"""The command line behind `make`: python -m utils check | notebook [--publish] | publish FOLDER.

`check` reads the settings and the data and names the run folder, before any kernel starts;
`notebook` then executes S10.ipynb into that folder (never over the committed one) and prints its
result; `--publish` (make full-run) and `publish` copy a finished run into the committed results.
Every refusal is one line; Ctrl-C stops the kernel, and the same command continues the run.
"""
import json
import shutil
import sys
import tempfile
from pathlib import Path

from utils.config import S10Error, read_record, settings, shown
from utils.run import RECIPE, ROOT, Run, run_folder


def check(log=print) -> Path:
    """The run folder of this execution, after reading the settings, the data and the checkpoint."""
    from utils.data import load_data
    from utils.device import pick_device

    cfg = settings()
    pick_device(cfg.device)
    folder = run_folder(cfg, load_data(cfg).digest)
    done = 0 if cfg.weights else len(Run(folder).history)
    log(f"run folder {shown(folder)}: seed {cfg.seed}, " + ("exploring trained weights" if cfg.weights else
        f"{done} of {cfg.epochs} epochs done" if done else f"{cfg.epochs} epochs, new"))
    return folder


def execute(folder: Path) -> None:
    """S10.ipynb executed top to bottom into folder/S10.ipynb (written also when a cell fails).

    The client runs in a thread of its own, so that Ctrl-C reaches this one (nbclient's own signal
    handlers, which only ask the busy kernel to shut down, are not installed outside the main
    thread): it interrupts the kernel, whose cell then stops as it would in Jupyter."""
    import threading

    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    notebook = nbformat.read(ROOT / "S10.ipynb", as_version=4)
    folder.mkdir(parents=True, exist_ok=True)
    failed = []
    with tempfile.TemporaryDirectory() as sockets:  # IPC, not TCP: no "without encryption" warning
        kernel = KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(sockets) / "kernel"))
        client = NotebookClient(notebook, km=kernel, timeout=None,
                                resources={"metadata": {"path": str(ROOT)}})

        def work():
            try:
                client.execute()
            except BaseException as exc:  # handed to the main thread
                failed.append(exc)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        try:
            while thread.is_alive():
                thread.join(0.5)
        except KeyboardInterrupt:
            if kernel.has_kernel:
                kernel.interrupt_kernel()
            thread.join(60)
            raise
        finally:
            if kernel.has_kernel:
                kernel.shutdown_kernel(now=True)
            nbformat.write(notebook, folder / "S10.ipynb")
    if failed:
        raise failed[0]


def result_lines(notebook) -> list:
    """The lines the Result cell of an executed S10.ipynb printed (accuracy first, then the table)."""
    for cell in json.loads(Path(notebook).read_text())["cells"]:
        text = "".join("".join(out.get("text", "")) for out in cell.get("outputs", []))
        if cell["cell_type"] == "code" and "accuracy, final epoch" in text:
            return [line for line in text.splitlines() if line.strip()]
    return []


def main(argv) -> int:
    from nbclient.exceptions import CellExecutionError

    folder = None
    try:
        if argv[:1] == ["check"]:
            check()
        elif argv[:1] == ["notebook"] and set(argv[1:]) <= {"--publish"}:
            folder = check()
            execute(folder)
            print("\n".join(result_lines(folder / "S10.ipynb")))
            if "--publish" in argv:
                print(publish(folder))
        elif argv[:1] == ["publish"] and len(argv) == 2:
            print(publish(argv[1]))
        else:
            print(__doc__.splitlines()[0], file=sys.stderr)
            return 2
    except S10Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except CellExecutionError as exc:
        if exc.ename == "KeyboardInterrupt":
            return stopped(folder)
        print(f"error: {exc.evalue}" if exc.ename == "S10Error" else f"error: {exc.ename}: {exc.evalue} "
              f"(the notebook with its traceback: {shown(folder / 'S10.ipynb')})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return stopped(folder)
    return 0


def publish(folder, root=ROOT) -> str:
    """Copy the finished run in `folder`, of the assignment's settings on all of CIFAR-10, into
    runs/s10-seed<n>.json/.pt, images/ and (if executed by `make`) S10.ipynb; returns what it did."""
    folder = Path(folder)
    record = read_record(folder / "record.json")
    cfg, done = record["settings"], len(record["history"])
    changed = [f"S10_{name.upper()}" for name in RECIPE if name != "seed" and cfg[name] != RECIPE[name]]
    if changed or done != cfg["epochs"]:
        why = ", ".join(changed) or f"{done} of {cfg['epochs']} epochs"
        raise S10Error(f"{shown(folder)} is not a finished run of the assignment's settings ({why}); "
                       "only such a run is published")
    seed = cfg["seed"]
    shutil.copyfile(folder / "record.json", root / "runs" / f"s10-seed{seed}.json")
    shutil.copyfile(folder / "weights.pt", root / "runs" / f"s10-seed{seed}.pt")
    for png in sorted((folder / "images").glob("*.png")):
        shutil.copyfile(png, root / "images" / png.name)
    notebook = (folder / "S10.ipynb").is_file()
    if notebook:
        shutil.copyfile(folder / "S10.ipynb", root / "S10.ipynb")
    done = f"published seed {seed}: runs/s10-seed{seed}.json/.pt, images/"
    return done + (" and S10.ipynb" if notebook else "")


def stopped(folder) -> int:
    print(f"\nstopped by Ctrl-C; the same command continues {shown(folder) if folder else 'the run'} "
          "after its last finished epoch", file=sys.stderr)
    return 130


if __name__ == "__main__":
    try:
        raise SystemExit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        raise SystemExit(130)
