"""sparkify-lakehouse on Apache Airflow 3: the daily DAG and the manually triggered full reprocess.

lakehouse_daily (@daily):
    wait_for_files  BashSensor over `lakehouse sources pending` (no Spark: exit 0 files pending, 1 nothing yet, 2 error)
    daily           spark-submit jobs/daily.py: the incremental run (pushes its run id)
    gate            `lakehouse gate --run-id <that run>`: its ops.runs row succeeded, reconciles, bad rows under 1 %
    dashboard       `lakehouse dashboard`: the operator's page, refreshed once the gate passed
    maintenance_day / maintain   on the maintenance weekday only (param, default Sunday): OPTIMIZE + VACUUM
lakehouse_full (manual): spark-submit jobs/full_reprocess.py, with params `reingest` and `allow_missing_source`
    (the reingest guard: without allow_missing_source it refuses, exit 2, when files bronze holds left the
    landing zone), then the gate and the dashboard.

Spark jobs run as BashOperators calling spark-submit, not the Spark provider's SparkSubmitOperator: the command
is the one cron, systemd and the docs show (spark-submit --properties-file .cache/spark-defaults.conf, written
by `make setup` with Delta's jars), no Spark connection to configure, and the exit code stays ours: Airflow
retries exit 3 (another run holds the warehouse's run lock) and nothing else, since a retry cannot fix
exit 2 (bad input or configuration, a quality rule set to fail) or a crash (exit 1; the next run replays
what it left, exactly once).

Where the project is: LAKEHOUSE_HOME in the workers' environment, else the checkout this file lies in
(dags_folder = <checkout>/deploy/airflow). Settings as for every `lakehouse` command: LAKEHOUSE_ENV,
LAKEHOUSE_SOURCE, LAKEHOUSE_WAREHOUSE, ... in the workers' environment, or conf/<env>.toml.
LAKEHOUSE_DASHBOARD_DIR: where the dashboard goes (default lakehouse-data/dashboard under LAKEHOUSE_HOME).
"""

from __future__ import annotations

import os
import shlex
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.sensors.bash import BashSensor
from airflow.sdk import DAG, Param, task
from airflow.sdk.exceptions import AirflowException, AirflowFailException

HOME = Path(os.environ.get("LAKEHOUSE_HOME") or Path(__file__).resolve().parents[2])
VENV_BIN = HOME / ".venv" / "bin"  # first on PATH: spark-submit runs the job with the `python3` it finds there
LAKEHOUSE = shlex.quote(str(VENV_BIN / "lakehouse"))
SPARK_SUBMIT = f"spark-submit --properties-file {shlex.quote(str(HOME / '.cache' / 'spark-defaults.conf'))}"
DASHBOARD = shlex.quote(os.environ.get("LAKEHOUSE_DASHBOARD_DIR") or str(HOME / "lakehouse-data" / "dashboard"))
BUSY = 3  # another run holds the warehouse's run lock: the only failure worth a retry

DEFAULT_ARGS: dict[str, Any] = {"owner": "data-engineering", "retries": 4, "retry_delay": timedelta(minutes=10)}


class LakehouseCommand(BashOperator):
    """A `lakehouse` or spark-submit command in the checkout: exit 3 is retried (the warehouse was busy); any other failure is final."""

    def __init__(self, *, bash_command: str, **kwargs: Any) -> None:
        command = f'export PATH={shlex.quote(str(VENV_BIN))}:"$PATH" && {bash_command}'
        super().__init__(bash_command=command, cwd=str(HOME), skip_on_exit_code=None, **kwargs)

    def execute(self, context: Any) -> Any:
        try:
            return super().execute(context)
        except AirflowException as exc:
            process = self.subprocess_hook.sub_process
            if process is not None and process.returncode == BUSY:
                raise  # retried after retry_delay
            raise AirflowFailException(f"{exc} (not retried: only exit {BUSY}, a busy warehouse, is)") from exc


def run_job(job: str, *args: str) -> str:
    """spark-submit a job with --report-json; on success the last line printed is the run id (the task's XCom)."""
    return (f'report="$(mktemp -t lakehouse-report.XXXXXX)" && trap \'rm -f "$report"\' EXIT && '
            f'{SPARK_SUBMIT} {shlex.quote(str(HOME / "jobs" / job))} {" ".join(args)} --report-json "$report" && '
            f'python -c \'import json, sys; print(json.load(open(sys.argv[1]))["run_id"])\' "$report"')


def gate_and_dashboard(run_task: str) -> tuple[LakehouseCommand, LakehouseCommand]:
    gate = LakehouseCommand(task_id="gate", bash_command=f"{LAKEHOUSE} gate --run-id {{{{ ti.xcom_pull(task_ids='{run_task}') }}}}")
    dashboard = LakehouseCommand(task_id="dashboard", bash_command=f"{LAKEHOUSE} dashboard --out {DASHBOARD}")
    return gate, dashboard


with DAG(
    dag_id="lakehouse_daily",
    description="New landing files into bronze, silver and gold; gate; dashboard; weekly maintenance",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,  # an incremental run reads everything that landed since the last one: a missed day needs no backfill
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={"maintain_weekday": Param(6, type="integer", minimum=0, maximum=6,
                                      description="weekday of the weekly maintenance (0 = Monday ... 6 = Sunday)")},
    tags=["lakehouse"],
) as daily_dag:
    wait_for_files = BashSensor(
        task_id="wait_for_files",
        bash_command=f"cd {shlex.quote(str(HOME))} && {LAKEHOUSE} sources pending",
        retry_exit_code=1,  # 1: nothing pending yet, look again; 2: an error, the sensor fails at once
        mode="reschedule",  # no worker slot held between looks
        poke_interval=300,
        timeout=int(timedelta(hours=20).total_seconds()),
        retries=0,
    )
    daily = LakehouseCommand(task_id="daily", bash_command=run_job("daily.py"))
    gate, dashboard = gate_and_dashboard("daily")

    @task.short_circuit(task_id="maintenance_day")
    def maintenance_day(**context: Any) -> bool:
        """True on the maintenance weekday (of the run's logical date, or now for a manual run)."""
        when = context.get("logical_date") or context["data_interval_end"] or datetime.now()
        return bool(when.weekday() == int(context["params"]["maintain_weekday"]))

    maintain = LakehouseCommand(task_id="maintain", bash_command=f"{SPARK_SUBMIT} {shlex.quote(str(HOME / 'jobs' / 'maintenance.py'))}")
    wait_for_files >> daily >> gate >> dashboard >> maintenance_day() >> maintain


with DAG(
    dag_id="lakehouse_full",
    description="Silver and gold rebuilt from bronze (a logic change); with reingest, bronze from the landing zone too",
    schedule=None,  # triggered by hand: airflow dags trigger lakehouse_full [-c '{"reingest": true}']
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "reingest": Param(False, type="boolean", description="rebuild bronze from the landing zone too (run full --reingest)"),
        "allow_missing_source": Param(False, type="boolean",
                                      description="with reingest: drop from bronze the files the landing zone no longer has "
                                                  "(without it the run refuses, exit 2, and writes nothing)"),
    },
    tags=["lakehouse"],
) as full_dag:
    full = LakehouseCommand(
        task_id="full",
        bash_command=run_job("full_reprocess.py",
                             "{{ '--reingest' if params.reingest else '' }}",
                             "{{ '--allow-missing-source' if params.reingest and params.allow_missing_source else '' }}"),
    )
    full_gate, full_dashboard = gate_and_dashboard("full")
    full >> full_gate >> full_dashboard
