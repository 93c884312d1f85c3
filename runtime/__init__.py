"""modpact.runtime: check contracts while the model runs, find the root cause."""

from modpact.runtime.monitor import Monitor, MonitorViolation, active_monitor
from modpact.runtime.report import DiagnosisReport, ViolationRecord

__all__ = ["Monitor", "MonitorViolation", "DiagnosisReport", "ViolationRecord", "active_monitor"]
