"""What a user sees in the Ray dashboard: named tasks, the state API over HTTP, and custom search metrics."""
from __future__ import annotations

import json
import os
import socket
import time
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read()


@pytest.fixture()
def ray_with_dashboard():
    import ray

    os.environ["RAY_AUTH_MODE"] = "disabled"
    if ray.is_initialized():
        ray.shutdown()
    port = free_port()
    # 8 logical CPUs: the controller's reserved group gets 2, so pseudo-labelling runs as parallel Ray tasks (with
    # one reserved CPU the round labels its pool in-process)
    ctx = ray.init(num_cpus=8, include_dashboard=True, dashboard_host="127.0.0.1", dashboard_port=port,
                   configure_logging=False, log_to_driver=False)
    yield ray, ctx
    ray.shutdown()


def test_search_is_visible_in_the_dashboard(ray_with_dashboard, data_dir, tmp_path):
    ray, ctx = ray_with_dashboard
    from ray.util.state import list_tasks

    from seminas_ray.distributed.runner import RunSettings
    from seminas_ray.distributed.runner import run_search
    from seminas_ray.tasks import get_task

    settings = RunSettings(
        task="nasbench", preset="paper-300", seed=0, concurrency=2, trial_cpus=0.5, out=tmp_path / "run",
        dashboard=True, options={"benchmark": "nb201", "data": None, "dataset": "cifar10", "method": "seminas"},
        overrides=("n_seed=20", "n_unlabelled=300", "n_per_round=10", "n_rounds=1", "pretrain_epochs=30",
                   "train_epochs=10"))
    report = run_search(get_task("nasbench").prepare(settings), settings)
    assert report["n_queries"] == 30
    assert json.loads((settings.out / "report.json").read_text())["n_queries"] == 30

    # name this cluster explicitly: other Ray instances may run on the same machine
    names = {t.name for t in list_tasks(address=f"http://{ctx.dashboard_url}", limit=10_000)}
    assert {"pseudo_label", "controller_round"} <= names, names

    # the same through the dashboard's HTTP API (what the UI itself reads)
    url = f"http://{ctx.dashboard_url}"
    assert json.loads(get(f"{url}/api/version"))["ray_version"] == ray.__version__
    tasks = json.loads(get(f"{url}/api/v0/tasks?limit=10000&filter_keys=name&filter_predicates=%3D"
                           f"&filter_values=pseudo_label"))
    assert tasks["data"]["result"]["total"] >= 1

    # custom metrics reach the node's Prometheus endpoint (what the Metrics view plots)
    node = ray._private.worker.global_worker.node
    deadline = time.time() + 60
    text = ""
    while time.time() < deadline:
        text = get(f"http://127.0.0.1:{node.metrics_export_port}/metrics").decode()
        if "seminas_queries" in text:
            break
        time.sleep(2)
    assert "seminas_queries" in text and "seminas_best_score" in text
