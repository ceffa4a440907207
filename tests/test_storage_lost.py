"""A worker that loses the database: a short outage is outlasted (each call retried with back-off),
a long one ends the worker with one line, and its trial then runs again on another worker. The
network is a TCP proxy between the worker and CI's PostgreSQL server (``REGLAB_TEST_POSTGRES_URL``);
cutting the proxy is the partition."""

import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from reglab.experiments.study import Study

from .conftest import run_cli, write_recipe
from .test_store import recorded_points

URL = os.environ.get("REGLAB_TEST_POSTGRES_URL")
RECIPE = """name: {name}
data: {{source: digits}}
model: {{name: linear}}
optim: {{name: sgd, lr: 0.05}}
train: {{epochs: 25, batch_size: 32}}
study: {{arms: {{base: {{}}, l2: {{optim.l2: 0.01}}}}, baseline: base, seeds: [0], heartbeat_seconds: 1}}
"""


class Proxy:
    """Forwards TCP connections on a loopback port to the server; ``cut`` drops every connection
    and stops listening, ``restore`` listens again on the same port."""

    def __init__(self, host: str, port: int):
        self.upstream, self.connections = (host, port), []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.listen()

    def listen(self) -> None:
        threading.Thread(target=self.accept, args=(self.listener,), daemon=True).start()

    def accept(self, listener) -> None:
        while True:
            try:
                client, _ = listener.accept()
                server = socket.create_connection(self.upstream)
            except OSError:
                return
            self.connections += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self.pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def pump(source, sink) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass

    def cut(self) -> None:
        for connection in [self.listener, *self.connections]:  # shutdown, not only close: it wakes the thread blocked in accept()
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            connection.close()
        self.connections = []

    def restore(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.listen()


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.skipif(not URL, reason="needs the PostgreSQL server CI starts (REGLAB_TEST_POSTGRES_URL)")
def test_a_worker_outlasts_a_short_outage_and_stops_in_one_line_after_a_long_one(tmp_path, capsys):
    name = f"lost-{os.getpid()}-{int(time.time())}"
    recipe = write_recipe(tmp_path, RECIPE.format(name=name))
    code, _, err = run_cli(capsys, "study", recipe, "--storage", URL, "--workers", "0", "--out", tmp_path / "s")
    assert code == 0, err
    study = Study(tmp_path / "s")
    server = make_url(URL)
    proxy = Proxy(server.host, server.port)
    through_proxy = server.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    (tmp_path / "a").mkdir()
    worker = subprocess.Popen([sys.executable, "-m", "reglab.cli", "worker", "--storage", through_proxy, "--study", name, "--quiet",
                               "--patience", "3"], cwd=tmp_path / "a", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        wait_for(lambda: any(len(t.intermediate_values) >= 2 for t in study.optuna.get_trials(states=(TrialState.RUNNING,))), 120,
                 "a run's second epoch")  # fmt: skip
        epochs_before = max(len(t.intermediate_values) for t in study.optuna.get_trials(states=(TrialState.RUNNING,)))
        proxy.cut()  # a short outage, mid-run
        time.sleep(2.0)  # under the 3 heartbeats after which a silent worker's trial is handed on
        proxy.restore()
        wait_for(lambda: len(recorded_points(study)) >= 1, 120, "a run recorded after the outage")
        assert worker.poll() is None, worker.stderr.read()
        wait_for(lambda: any(len(t.intermediate_values) >= 1 for t in study.optuna.get_trials(states=(TrialState.RUNNING,))), 120,
                 "the next run's first epoch")  # fmt: skip
        running = study.optuna.get_trials(states=(TrialState.RUNNING,))
        assert epochs_before >= 2 and not [t for t in study.optuna.get_trials() if t.state == TrialState.FAIL]  # nothing lost to the outage

        started = time.time()
        proxy.cut()  # for good
        _, err = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 2 and err.count("\n") == 1, err
    assert "--storage postgresql" in err and "unreachable for" in err and "runs again on another worker" in err
    assert time.time() - started < 30  # patience 3 s: tries after 1 and 3 s, then the line
    assert running  # a run was under way when the database went

    (tmp_path / "b").mkdir()
    finisher = subprocess.run([sys.executable, "-m", "reglab.cli", "worker", "--storage", URL, "--study", name, "--quiet"],
                              cwd=tmp_path / "b", capture_output=True, text=True, timeout=300)  # fmt: skip
    assert finisher.returncode == 0, finisher.stderr
    assert recorded_points(study) == [("base", 0), ("l2", 0)]  # each once, the lost worker's run retried


def test_a_negative_patience_is_one_line(tmp_path, capsys):
    code, _, err = run_cli(capsys, "worker", "--storage", f"sqlite:///{tmp_path / 'x.db'}", "--study", "x", "--patience", "-1")
    assert code == 2 and err.count("\n") == 1 and "--patience must be 0 seconds or more" in err
