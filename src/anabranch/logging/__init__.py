"""Run logs: ``get_run_logger()``, storage of every run's log lines, and print capture."""

from anabranch.logging.loggers import flow_run_logger, get_run_logger, task_run_logger

__all__ = ["flow_run_logger", "get_run_logger", "task_run_logger"]
