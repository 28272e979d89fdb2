"""
Persistent memory (NVDIMM / PMEM) stacks through the ``pmem_stack`` binary
============================================================================

A custom Salt state module: put this file in ``_states/`` of a file root (or in
``extension_modules``) and the states run the ``pmem_stack`` binary of pmem-stack, which
must be installed on the minion (``/usr/local/bin/pmem_stack`` by default; the
binary's own copy for the boot replay, which ``boot: {persist: true}`` writes and the
teardown of the last persisted stack removes, lives apart, in
``/usr/local/libexec/pmem-stack/``, and never touches a ``pmem_stack`` you install).

The keyword arguments are the binary's own options (``namespaces``, ``devices``,
``partitions``, ``filesystems``, ``mounts``, ``boot``, ``allow_data_loss``,
``verify_pmd``), passed as they are: the binary checks them and names a bad one by its
path (``namespaces[0].regio: unknown field ...``). ``state: absent`` is the ``absent``
function here (``state`` is a word of Salt's own).

.. code-block:: yaml

    pmem-striped:
      pmem_stack.managed:
        - namespaces:
            - {name: pm0, region: region0, mode: fsdax}
            - {name: pm1, region: region1, mode: fsdax}
        - devices:
            - {name: pmem-striped, target: striped, members: [pm0, pm1], chunk: 2M}
        - filesystems:
            - {device: pmem-striped, type: xfs, label: pmemfs}
        - mounts:
            - {path: /mnt/pmem, device: pmem-striped, dax: always}

Under ``test=True`` the binary runs with ``--check`` (it plans and changes nothing): the
state returns ``result: None`` and the pending steps (and diffs) in ``changes``. A run
that changes something returns the steps done and the diffs; a run with nothing to do
returns no changes; a failure returns ``result: False`` with the binary's message.
"""

import difflib
import json
import os
import tempfile

__virtualname__ = "pmem_stack"

DEFAULT_BINARY = "/usr/local/bin/pmem_stack"


def __virtual__():
    return __virtualname__


def _options(kwargs):
    """The binary's arguments: the keywords Salt did not keep for itself."""
    return {k: v for k, v in kwargs.items() if not k.startswith("__")}


def _step(step):
    text = "{} {}".format(step.get("action", "?"), step.get("target", "?"))
    if step.get("detail"):
        text += ": " + step["detail"]
    if step.get("destructive"):
        text += " (destroys data)"
    return text


def _diff(items):
    """The result's before/after pairs as one unified diff, as file.managed shows one."""
    out = []
    for item in items or []:
        out.extend(
            difflib.unified_diff(
                item.get("before", "").splitlines(),
                item.get("after", "").splitlines(),
                item.get("before_header", "before"),
                item.get("after_header", "after"),
                lineterm="",
            )
        )
    return "\n".join(out)


def _run(name, binary, options, test):
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    if not os.access(binary, os.X_OK):
        ret["comment"] = f"{binary} is not an executable file (install pmem_stack there, or set binary)"
        return ret
    # the arguments in a file, as Ansible passes them to binary modules; readable by root
    # only (mkstemp: mode 0600), removed after the run
    fd, path = tempfile.mkstemp(prefix="pmem_stack-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(options, f)
        argv = [binary] + (["--check"] if test else []) + ["--diff", path]
        run = __salt__["cmd.run_all"](
            argv, python_shell=False, ignore_retcode=True, output_loglevel="debug"
        )
    finally:
        os.unlink(path)

    try:
        result = json.loads(run.get("stdout") or "")
    except ValueError:
        result = None
    if not isinstance(result, dict):
        ret["comment"] = "{} printed no JSON result (exit status {}): {}".format(
            binary,
            run.get("retcode"),
            (run.get("stderr") or run.get("stdout") or "").strip(),
        )
        return ret

    comment = result.get("comment") or result.get("msg") or ""
    if result.get("warnings"):
        ret["warnings"] = list(result["warnings"])
    diff = _diff(result.get("diff"))
    if result.get("failed") or run.get("retcode") not in (0, 2):
        ret["comment"] = comment or f"{binary} failed (exit status {run.get('retcode')})"
        # the steps done before the failure are changes all the same
        if result.get("done"):
            ret["changes"]["done"] = [_step(s) for s in result["done"]]
        if result.get("failed_step"):
            ret["changes"]["failed_step"] = result["failed_step"]
        return ret

    ret["result"] = True
    ret["comment"] = comment
    if result.get("changed"):
        if test:
            ret["result"] = None
            ret["changes"]["pending"] = [_step(s) for s in result.get("plan", [])]
        else:
            ret["changes"]["done"] = [_step(s) for s in result.get("done", [])]
        if diff:
            ret["changes"]["diff"] = diff
    return ret


def managed(name, binary=DEFAULT_BINARY, **kwargs):
    """
    Converge the persistent-memory stack the keyword arguments declare.

    name
        The state's name (any: the stack is identified by its namespaces' names).

    binary
        Path of the pmem_stack binary on the minion.

    Every other keyword is an option of the binary (see its README: ``namespaces``,
    ``devices``, ``partitions``, ``filesystems``, ``mounts``, ``boot``,
    ``allow_data_loss``, ``verify_pmd``).
    """
    return _run(name, binary, _options(kwargs), __opts__["test"])


def absent(name, binary=DEFAULT_BINARY, **kwargs):
    """
    Tear the declared stack down (the binary's ``state: absent``): unmount, remove the dm
    devices and partitions; the namespaces go only with ``allow_data_loss: true``.
    """
    options = _options(kwargs)
    options["state"] = "absent"
    return _run(name, binary, options, __opts__["test"])
