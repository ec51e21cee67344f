"""`python -m photo_sorter_ml`: run the ML service with uvicorn (PHOTO_SORTER_ML_HOST/PORT).

Exit status 2: bad configuration; 3: a model weight file is missing or altered (nothing listens then).
With PHOTO_SORTER_ML_PARENT_PID set (by `photo-sorter sort`), the service shuts down when that process is gone.
"""
from __future__ import annotations

import logging
import os
import signal
import sys


def main() -> int:
    # Started by `photo-sorter sort`, this process inherits the blocked signals of the Swift thread that spawned it
    # (SIGUSR1, the "stop at once" of app.py, among them): unblock every one, as for a process started from a shell.
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    # This process multiplies only small matrices (suggestions); OpenBLAS's default thread per core would spin
    # against the workers, which use every core (`WorkerPool` sets the same for the workers it starts elsewhere).
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    logging.basicConfig(level=os.environ.get("PHOTO_SORTER_ML_LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .config import Settings

    from .lifeline import parent_pid_from_env, terminate_self, watch_parent

    try:
        settings = Settings.from_env()
        parent_pid = parent_pid_from_env()
    except ValueError as e:
        print(f"photo_sorter_ml: configuration error: {e}", file=sys.stderr)
        return 2
    # The workers start first and load their models while this process imports the service and the HTTP layer
    # (bench/RESULTS.md, "Issue 23, third pass").
    from .worker_pool import WorkerPool

    pool = WorkerPool.for_settings(settings)
    pool.start()
    from .models import ModelFileError
    from .service import Service

    try:
        service = Service(settings, pool)
    except ModelFileError as e:
        print(f"photo_sorter_ml: cannot start the {settings.model} model: {e}", file=sys.stderr)
        pool.abandon()
        return 3
    import uvicorn

    from .app import create_app

    app = create_app(settings, service)
    if parent_pid is not None:
        watch_parent(parent_pid, terminate_self, "ML service")
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info",
                access_log=os.environ.get("PHOTO_SORTER_ML_ACCESS_LOG", "0") == "1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
