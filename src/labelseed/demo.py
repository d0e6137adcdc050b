"""`make demo`: the whole method end to end on real labeled data, through the CLI.

1. From raw data, the labeling loop over a project (``init -> embed -> select -> import ->
   fit -> query -> import -> fit -> apply -> audit -> import -> fit --certify audit -> apply
   -> status``), the demo playing the person by
   revealing the hidden label of each item it is asked about:
   real texts (WordNet noun glosses, labeled by lexicographer file, Debian ``wordnet-base``;
   MiniLM embeddings) and real images (Fashion-MNIST PNG files written from Debian
   ``dataset-fashion-mnist``; EfficientNet-Lite0 embeddings).
2. From vectors, ``labelseed autolabel`` on scikit-learn's digits and all 70,000 Fashion-MNIST
   images, with 10 random labels per class.

Every step ends with the auto-labels checked against the hidden truth.
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from . import datasets
from .cli import main as cli_main


def run(name: str, X: np.ndarray, y: np.ndarray, out_root: Path, per_class: int = 10) -> None:
    folder = out_root / name
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "embeddings.npy", X)
    seed = datasets.hide_labels(y, per_class, random_state=0)
    with open(folder / "seed.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "label"])
        for i in np.flatnonzero(seed != None):  # noqa: E711
            w.writerow([i, seed[i]])
    print(f"\n=== {name}: {len(y)} rows, {len(np.unique(y))} classes, {per_class} labels per class ===")
    out = folder / "run"
    code = cli_main(["autolabel", "--embeddings", str(folder / "embeddings.npy"), "--labels", str(folder / "seed.csv"),
                     "--target-precision", "0.95", "--out", str(out), "--force"])
    if code != 0:
        raise SystemExit(code)
    code = cli_main(["report", "--run", str(out), "--force"])
    if code != 0:
        raise SystemExit(code)
    summary = json.loads((out / "summary.json").read_text())
    rows = list(csv.DictReader(open(out / "auto_labels.csv")))
    auto = [(int(r["id"]), r["label"]) for r in rows if r["source"] == "auto"]
    right = sum(y[i] == lab for i, lab in auto)
    realized = right / len(auto) if auto else float("nan")
    print("hidden-truth check, per class (expected -> realized precision of the auto-labels):")
    for row in summary["classes"]:
        mine = [y[i] == lab for i, lab in auto if lab == row["label"]]
        got = f"{np.mean(mine):.3f}" if mine else "-"
        exp = f"{row['expected_precision']:.3f}" if row["expected_precision"] is not None else "-"
        print(f"  {row['label']:>12}: {len(mine):6d} auto-labels, expected {exp} -> realized {got}")
    exp_all = summary["expected_precision"]
    print(f"overall: {len(auto)} auto-labels, realized precision {realized:.3f} vs expected "
          f"{exp_all if exp_all is None else round(exp_all, 3)}; coverage {summary['coverage']:.3f}")


def _cli(*args: str) -> None:
    print("$ labelseed " + " ".join(args), flush=True)
    code = cli_main(list(args))
    if code != 0:
        raise SystemExit(code)


def _reveal(picks_csv: Path, truth: dict[str, str], answers: Path) -> int:
    """The demo plays the person: the hidden label of every item it was asked about."""
    picked = [r["id"] for r in csv.DictReader(open(picks_csv))]
    with open(answers, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "label"])
        w.writerows((i, truth[i]) for i in picked)
    return len(picked)


def loop(name: str, folder: Path, init_args: list[str], embed_args: list[str], truth: dict[str, str],
         first: int, second: int, target: float, audit_per_class: int = 30, check_per_class: int = 10) -> None:
    """init -> embed -> select -> (person) -> import -> fit -> query -> (person) -> import -> fit -> apply
    -> audit -> (person) -> import -> fit --certify audit -> apply -> a fresh audit of that run."""
    print(f"\n=== {name}: {len(truth)} items, {len(set(truth.values()))} classes, the loop from raw data ===")
    proj = folder / "project"
    _cli("init", str(proj), *init_args)
    _cli("embed", str(proj), *embed_args)
    _cli("select", str(proj), "--budget", str(first), "--out", str(folder / "round1.csv"))
    print(f"(the person labels the {_reveal(folder / 'round1.csv', truth, folder / 'answers1.csv')} items)")
    _cli("import", str(proj), str(folder / "answers1.csv"), "--who", "demo")
    _cli("fit", str(proj), "--target-precision", str(target), "--quiet")
    _cli("query", str(proj), "--budget", str(second), "--out", str(folder / "round2.csv"))
    print(f"(the person labels the {_reveal(folder / 'round2.csv', truth, folder / 'answers2.csv')} items)")
    _cli("import", str(proj), str(folder / "answers2.csv"), "--who", "demo")
    _cli("fit", str(proj), "--target-precision", str(target), "--quiet")
    _cli("apply", str(proj), "--out", str(folder / "labels_uncertified.csv"))
    from .project import Project

    with Project.open(proj) as p:
        before = p.status()["last_run"]
    # a verified random sample of the auto-labels measures the estimate above (calibrated on the
    # labels select/query drew, each weighted by 1 / its probability) and certifies the thresholds
    n_classes = len(set(truth.values()))
    _audit(proj, folder, truth, audit_per_class * n_classes, "audit")
    _cli("fit", str(proj), "--target-precision", str(target), "--certify", "audit", "--quiet")
    _cli("apply", str(proj), "--out", str(folder / "labels.csv"))
    with Project.open(proj) as p:
        first_audit = p.status().get("audit") or {}
        certified = p.status()["last_run"]
    # a fresh audit of the certified run checks what it reports, as a user would
    _audit(proj, folder, truth, check_per_class * n_classes, "check")
    _cli("status", str(proj))
    _cli("report", "--project", str(proj), "--out", str(folder / "report"))
    with Project.open(proj) as p:
        st = p.status()
    if first_audit:
        measured, inside = _against(before["expected_precision"], first_audit)
        trusted = (before.get("estimate") or {}).get("trusted", True)
        how = ("calibrated on the labels select/query drew" if trusted
               else "marked untrusted (picked labels only)")
        print(f"the run before the audit reported {_r(before['expected_precision'])}, {how}; "
              f"the {measured}: {'inside' if inside else 'outside'} that interval")
    check = st.get("audit") or {}
    if check and check.get("run_id") == certified["run_id"]:
        measured, inside = _against(certified["expected_precision"], check)
        print(f"the audit-certified run reports {_r(certified['expected_precision'])}; a fresh {measured}, without "
              f"the hidden truth: {'they agree' if inside else 'they DISAGREE'}")
    rows = list(csv.DictReader(open(folder / "labels.csv")))
    auto = [(r["id"], r["label"]) for r in rows if r["source"] == "auto"]
    print("hidden-truth check of the audit-certified run (expected -> realized precision, per class):")
    per = certified["per_class"]
    for label in sorted(per):
        mine = [truth[i] == lab for i, lab in auto if lab == label]
        if not mine:
            print(f"  {label:>20}:      0 auto-labels")
            continue
        print(f"  {label:>20}: {len(mine):6d} auto-labels, expected {_r(per[label]['expected_precision'])} "
              f"[{_r(per[label]['precision_low'])}, {_r(per[label]['precision_high'])}] -> realized {np.mean(mine):.3f}")
    realized = np.mean([truth[i] == lab for i, lab in auto]) if auto else float("nan")
    lr = certified
    lo, hi = lr["expected_precision_interval"]
    print(f"overall: {len(auto)} auto-labels from {len(rows) - len(auto)} human labels; realized precision "
          f"{realized:.3f} vs expected {_r(lr['expected_precision'])} [{_r(lo)}, {_r(hi)}] (target {target}, "
          f"certified by the audit); coverage {lr['coverage']:.3f}")


def _audit(proj: Path, folder: Path, truth: dict[str, str], budget: int, name: str) -> None:
    """Draw an audit of the last run, the demo verifying it as a person would, and import it."""
    _cli("audit", str(proj), "--budget", str(budget), "--out", str(folder / f"{name}.csv"))
    print(f"(the person verifies the {_reveal(folder / f'{name}.csv', truth, folder / f'{name}_answers.csv')} "
          "auto-labels)")
    _cli("import", str(proj), str(folder / f"{name}_answers.csv"), "--who", "demo")


def _against(reported: float | None, audit: dict[str, Any]) -> tuple[str, bool]:
    """What an audit measured, and whether a reported precision lies inside its interval."""
    lo, hi = audit["interval_95"]
    return (f"audit of {audit['n_verified']} of its auto-labels measured {audit['realized_precision']:.3f} "
            f"[{lo:.3f}, {hi:.3f}] (95%)", reported is not None and lo <= reported <= hi)


def _r(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def texts_demo(root: Path) -> None:
    try:
        texts, labels = datasets.wordnet_noun_glosses()
    except datasets.DatasetMissing as exc:
        print(f"\n(skipping the text loop: {exc})")
        return
    classes = ["noun.animal", "noun.plant", "noun.food", "noun.body", "noun.location", "noun.person"]
    rng = np.random.default_rng(0)
    keep = np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:500] for c in classes]))
    folder = root / "wordnet-texts"
    folder.mkdir(parents=True)
    truth = {}
    with open(folder / "glosses.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text"])
        for i in keep:
            w.writerow([f"wn{i}", texts[i]])
            truth[f"wn{i}"] = str(labels[i])
    loop("WordNet glosses (texts)", folder, ["--data", str(folder / "glosses.csv"), "--text-column", "text"], [],
         truth, first=60, second=30, target=0.9)


def images_demo(root: Path) -> None:
    try:
        imgs, y = datasets.fashion_mnist_images()
    except datasets.DatasetMissing as exc:
        print(f"\n(skipping the image loop: {exc})")
        return
    from PIL import Image

    folder = root / "fashion-images"
    (folder / "images").mkdir(parents=True)
    take = np.sort(np.random.default_rng(0).choice(len(y), 3000, replace=False))
    truth = {}
    for i in take:
        name = f"{i:05d}.png"
        Image.fromarray(imgs[i]).save(folder / "images" / name)
        truth[name] = datasets.FASHION_CLASSES[y[i]]
    loop("Fashion-MNIST (image files)", folder, ["--image-dir", str(folder / "images")], ["--image-size", "96"],
         truth, first=50, second=50, target=0.9)


def main() -> None:
    out_root = Path("out/demo")
    loops = out_root / "loop"
    if loops.exists():  # the demo's own folder from an earlier demo run
        import shutil

        shutil.rmtree(loops)
    texts_demo(loops)
    images_demo(loops)
    X, y = datasets.digits()
    run("digits", X, y, out_root)
    try:
        Xf, yf = datasets.fashion_mnist_vectors()
    except datasets.DatasetMissing as exc:
        print(f"\n(skipping Fashion-MNIST: {exc})")
    else:
        run("fashion-mnist", Xf, yf, out_root)
    print(f"\nOutputs are in {out_root}/; open the reports: "
          + ", ".join(str(p) for p in sorted(out_root.glob("**/report/report.html"))))
    projects = sorted(p.parent for p in loops.glob("*/project/labelseed.db"))
    if projects:
        print("Label, audit and run in the browser (a local page, this machine only):")
        for proj in projects:
            print(f"  .venv/bin/labelseed serve {proj}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
