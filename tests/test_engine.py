"""The trial engine on its own, with a plan that trains nothing: every point runs once however
often the queue is filled, a point whose training fails is failed and queued again on the next
fill, results come back per point. (Studies and sweeps, with kills and resumes, train for real in
``test_study.py`` and ``test_sweep.py``.)"""

import math
from types import SimpleNamespace

from optuna.trial import TrialState

from reglab.experiments.engine import Engine
from reglab.training.run import RunResult


class Squares(Engine):
    """Points 0..4; a point's value is its square, reported as one epoch; point 3 fails while
    ``broken`` holds it."""

    kind, home = "study", "studies"

    def read_plan(self, path):
        self.config = SimpleNamespace(metric="val_accuracy", heartbeat_seconds=1, maximize=True, objectives=[("val_accuracy", True)])
        self.recipe = SimpleNamespace(train=SimpleNamespace(device="cpu", amp="off"), data=SimpleNamespace(path=None),
                                      model=SimpleNamespace(name="linear"))  # what a worker checks
        self.trained, self.broken = [], {3}

    def points(self):
        return [(n,) for n in range(5)]

    def point_params(self, point):
        return {"n": point[0]}

    def suggest(self, trial):
        return (trial.suggest_int("n", 0, 4),)

    def run_name(self, point):
        return f"n{point[0]}"

    def train_point(self, point, attempt, reporter, resume):
        self.trained.append(point)
        if point[0] in self.broken:
            raise RuntimeError("this point cannot train")
        attempt.mkdir(parents=True)
        row = {"epoch": 1, "val_accuracy": float(point[0] ** 2)}
        reporter.epoch_end(row)
        return RunResult(attempt, "completed", [row], {})

    def measure(self, result):
        return result.history[-1]["val_accuracy"], None


def squares(tmp_path) -> Squares:
    engine = Squares(tmp_path, f"sqlite:///{tmp_path / 'queue.db'}", name="squares")
    engine.quiet = True
    return engine


def test_every_point_runs_once_however_often_the_queue_is_filled(tmp_path):
    engine = squares(tmp_path)
    engine.broken = set()
    assert engine.enqueue_missing() == 5 and engine.enqueue_missing() == 0
    engine.work()
    assert sorted(engine.trained) == engine.points()
    assert engine.enqueue_missing() == 0
    engine.work()
    assert len(engine.trained) == 5  # nothing trained twice
    records = engine.records()
    assert {point: row["value"] for point, row in records.items()} == {(n,): float(n * n) for n in range(5)}
    assert sorted(path.name for path in (tmp_path / "runs").iterdir()) == [f"n{n}" for n in range(5)]  # attempts became runs


def test_a_failed_point_is_failed_and_queued_again_then_runs(tmp_path):
    engine = squares(tmp_path)
    engine.enqueue_missing()
    engine.work()
    assert (3,) not in engine.records() and len(engine.records()) == 4
    assert [t.state for t in engine.queued() if t.user_attrs["pair"] == [3]] == [TrialState.FAIL]
    engine.broken = set()
    assert engine.enqueue_missing() == 1  # only the failed point
    engine.work()
    assert engine.records()[(3,)]["value"] == 9.0 and engine.trained.count((3,)) == 2
    assert not any(path.name.startswith(".") for path in (tmp_path / "runs").iterdir())  # no attempt left behind
    assert not math.isnan(engine.records()[(4,)]["value"])
