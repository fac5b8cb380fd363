"""The `rectune` command as DESIGN.md's CLI contract states it, run as a real subprocess where it matters."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recsys_core.cli import main
from tests.conftest import ROOT, make_interactions

METRIC_KEYS = {"ndcg@10", "recall@10", "hr@10", "mrr@10", "map@10", "precision@10", "coverage@10", "novelty@10", "n_users"}


def rectune(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "recsys_core", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)


def test_data_report_demo_text(capsys) -> None:
    assert main(["data", "report", "demo"]) == 0
    out = capsys.readouterr().out
    for words in ("interactions 100,836", "users 610", "items 9,724", "sparsity", "user activity", "item popularity",
                  "gini", "time span 1996-03-29 .. 2018-09-24", "Cleaning", "dedupe: 100,836 -> 100,836", "Warnings"):
        assert words in out, words


def test_data_report_json_is_the_only_stdout() -> None:
    res = rectune("data", "report", "demo", "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["interactions"] == 100836 and info["users"] == 610 and info["items"] == 9724
    assert info["report"]["mapping"]["item"] == "movieId"
    assert "loading demo" in res.stderr  # progress goes to stderr


def test_evaluate_demo_pop_json_contract() -> None:
    res = rectune("evaluate", "--data", "demo", "--model", "pop", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert METRIC_KEYS <= set(out)
    assert out["split"] == "leave-last-out" and out["model"] == "pop"
    assert out["ndcg@10"] == pytest.approx(0.0178, rel=0.05)
    assert out["n_users"] == 610 and "train_seconds" in out and "eval_seconds" in out


def test_evaluate_headerless_tab_separated_with_columns(tmp_path: Path, capsys) -> None:
    frame = make_interactions(n_users=40)
    path = tmp_path / "inter.tsv"
    frame[["item_id", "user_id", "timestamp", "rating"]].to_csv(path, sep="\t", header=False, index=False)
    code = main(["evaluate", "--data", str(path), "--model", "itemknn", "--no-header", "--sep", "tab",
                 "--columns", "user=1,item=0,rating=3,timestamp=2", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["split"] == "leave-last-out" and out["n_users"] == 40
    assert out["hr@10"] > 0.3  # the block structure is found, so the columns were mapped right


def test_no_timestamp_uses_random_leave_one_out_and_says_so(tmp_path: Path, capsys) -> None:
    frame = make_interactions(n_users=30)
    path = tmp_path / "plays.csv"
    frame[["user_id", "item_id"]].assign(play_count=3).to_csv(path, index=False)
    assert main(["evaluate", "--data", str(path), "--model", "pop", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["split"] == "random-leave-one-out"
    assert "no timestamps" in out["split_detail"]["description"]
    assert main(["evaluate", "--data", str(path), "--model", "pop"]) == 0
    assert "random-leave-one-out" in capsys.readouterr().out


def test_xwines_without_mapping(xwines) -> None:
    res = rectune("evaluate", "--data", str(xwines), "--model", "pop", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["n_users"] == 10304
    assert out["ndcg@10"] == pytest.approx(0.0404, rel=0.05)


def test_user_errors_exit_2_with_one_line() -> None:
    res = rectune("evaluate", "--data", "demo", "--model", "pop", "--columns", "user=nope")
    assert res.returncode == 2
    assert res.stdout == ""
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "'nope'" in errors[0] and "Traceback" not in res.stderr


def test_evaluate_requires_data_and_model(capsys) -> None:
    assert main(["evaluate", "--data", "demo"]) == 2
    assert "--model" in capsys.readouterr().err
