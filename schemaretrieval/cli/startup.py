"""How a command starts and ends: TensorFlow's devices started without the one start-up
line a machine without a GPU can do without, and the process ended without a crash at exit.

TensorFlow 2.21's wheel is built for CUDA. On a machine where no CUDA
driver loads, its import says so ("Could not find cuda drivers on your
machine, GPU will not be used") and its first use of the devices then logs,
at error level::

    E0000 00:00:... cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)

``TF_CPP_MIN_LOG_LEVEL=3`` would hide it, and every other error line of
TensorFlow's C++ with it, for the whole process (the level is read once);
``CUDA_VISIBLE_DEVICES`` does not (cuInit fails before it looks at devices).
`start_devices` starts the devices while the process's stderr passes
through a filter that drops that one line, and only where no CUDA driver
loads: on a machine with a driver a failing cuInit is a real error, and is
left alone. The lines TensorFlow writes while it is imported, before the
command runs, are the README's "start-up lines".

`end_process` ends the command's process once its output is flushed,
without the interpreter's teardown: with TensorFlow 2.21 imported before
pyarrow 18.1 converts a parquet table (``pd.read_parquet``), about one exit
in two aborted in C++ teardown ("terminate called without an active
exception", exit status 134) after the command had finished, or had printed
its one-line error.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
import threading
import traceback

__all__ = ["cuda_driver_loads", "dropping_lines", "start_devices", "end_process", "NO_DRIVER_LINE"]

#: What the line dropped where no CUDA driver loads contains.
NO_DRIVER_LINE = b"] failed call to cuInit: "


def cuda_driver_loads() -> bool:
    """True when the CUDA driver library loads (``libcuda.so.1``, as TensorFlow looks for it).

    >>> isinstance(cuda_driver_loads(), bool)
    True
    """
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


@contextlib.contextmanager
def dropping_lines(*needles: bytes, fd: int = 2):
    """While entered, what is written to file descriptor ``fd`` (C++ libraries
    included) goes through a pipe; lines holding one of ``needles`` are dropped,
    every other line passes as it is written.

    >>> import os, tempfile
    >>> target, saved = tempfile.TemporaryFile(), os.dup(1)   # fd 1 into a file, for the example
    >>> _ = os.dup2(target.fileno(), 1)
    >>> with dropping_lines(b"noise", fd=1):
    ...     _ = os.write(1, b"kept\\nsome noise\\nkept too\\n")
    >>> _ = os.dup2(saved, 1); os.close(saved); _ = target.seek(0)
    >>> target.read()
    b'kept\\nkept too\\n'
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = os.dup(fd)
    read_end, write_end = os.pipe()
    os.dup2(write_end, fd)
    os.close(write_end)

    def pump():
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not any(needle in line for needle in needles):
                    os.write(saved, line)

    thread = threading.Thread(target=pump, name="dropping_lines", daemon=True)
    thread.start()
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os.dup2(saved, fd)  # closes the pipe's last write end: the pump reads to its end
        thread.join(timeout=10)
        os.close(saved)


def start_devices() -> None:
    """Starts TensorFlow's devices (once per process), without the cuInit line
    where no CUDA driver loads (see the module docstring).

    >>> start_devices()
    """
    import tensorflow as tf

    if cuda_driver_loads():
        tf.config.list_physical_devices()
        return
    with dropping_lines(NO_DRIVER_LINE):
        tf.config.list_physical_devices()


def end_process(command, argv) -> None:
    """Runs ``command(argv)`` and ends the process with its exit status (0 when it
    returns, a `SystemExit`'s code, 1 with the traceback for an unexpected error,
    130 for Ctrl-C), once stdout, stderr and the logs are flushed, by
    ``os._exit``: the interpreter's teardown, where the abort happens (see the
    module docstring), is skipped. Never returns.

    >>> end_process  # doctest: +ELLIPSIS
    <function end_process at ...>
    """
    try:
        command(argv)
        status = 0
    except SystemExit as exit:
        code = exit.code
        if code is not None and not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
        status = code or 0
    except KeyboardInterrupt:
        status = 130
    except BaseException:  # a bug, not the user's error: its traceback, as Python would print it
        traceback.print_exc()
        status = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)
