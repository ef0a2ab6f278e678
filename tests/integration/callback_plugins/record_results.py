# Test-only callback: append every task result as one JSON line to $RECORD_RESULTS,
# so pytest asserts on structured results instead of parsing console output.
from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "record_results"
    CALLBACK_NEEDS_ENABLED = False

    def _write(self, result, status: str) -> None:
        path = os.environ.get("RECORD_RESULTS")
        if not path:
            return
        row = {"task": result._task.get_name(), "action": result._task.action,
               "host": result._host.get_name(), "status": status,
               "result": self._convert(result._result)}
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, default=str) + "\n")

    @staticmethod
    def _convert(value):
        return json.loads(json.dumps(value, default=str))

    def v2_runner_on_ok(self, result):
        self._write(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._write(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._write(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._write(result, "unreachable")
