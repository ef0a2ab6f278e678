# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one exception type of the collection.

Every service raises DeployError; module_runner turns it into fail_json in one
place, so messages and structured details reach the user the same way everywhere.
"""
from __future__ import annotations

from typing import Any


class DeployError(Exception):
    """A failure the user can act on: a message plus structured details."""

    def __init__(self, msg: str, **details: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details


def invalid_option(option: str, given: Any, accepted: str) -> DeployError:
    """Name the option, what was given and what is accepted."""
    return DeployError(
        "Invalid value for option '%s': %r. Accepted: %s." % (option, given, accepted),
        option=option,
    )
