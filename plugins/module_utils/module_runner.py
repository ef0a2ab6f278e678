# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a module's service and convert DeployError to fail_json in one place."""
from __future__ import annotations

import traceback
from typing import Any, Callable

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError

Handler = Callable[[AnsibleModule], "dict[str, Any]"]


def run_module(handler: Handler, requires: "dict[str, str | None] | None" = None,
               **module_kwargs: Any) -> None:
    """Build the AnsibleModule, check Python requirements, call handler, report.

    requires maps a pip requirement name to its import traceback (None when the
    import succeeded); a missing library fails with Ansible's standard message.
    """
    module_kwargs.setdefault("supports_check_mode", True)
    module = AnsibleModule(**module_kwargs)
    for lib, import_error in (requires or {}).items():
        if import_error is not None:
            module.fail_json(msg=missing_required_lib(lib), exception=import_error)
    try:
        result = handler(module)
    except DeployError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except Exception as exc:  # pylint: disable=broad-except
        # An unexpected failure still fails cleanly, with the traceback for -vvv.
        module.fail_json(msg="Unexpected error: %s" % exc, exception=traceback.format_exc())
    module.exit_json(**result)
