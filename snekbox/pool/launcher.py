# The program a pre-started jail's interpreter runs while it waits: its source is passed to the
# interpreter with -c (it is never imported inside the jail), so this file has no docstring and
# no module-level import, either of which would leave a name in the run's __main__.
#
# Protocol on the channel (a stream socket, its descriptor number in sys.argv[1]):
#   launcher -> server  b"R"   the interpreter is up and waiting
#   server -> launcher  the length of what follows (8 decimal digits), then the program's
#                       arguments, NUL-separated
#   launcher -> server  b"A"   the program was received; the channel is closed before it runs
# End of file before the whole message means the server went away: the jail ends quietly.
#
# Then the launcher makes the interpreter look as if it had been started with those arguments
# (sys.argv, sys.orig_argv, sys.path[0], the __main__ namespace) and runs them the way CPython's
# command line does: -c code, -m module (through runpy, as CPython does), or a script file.
# This file runs under every interpreter snekbox offers (3.10+), so it uses nothing newer.


def _snekbox_pool_launch() -> None:
    import os
    import sys

    namespace = sys.modules["__main__"].__dict__
    channel = int(sys.argv[1])
    # An interpreter's first compile() costs milliseconds (1.6 to 2.8 here) that its second
    # does not: pay them while waiting, not after the hand-over.
    compile("pass", "<string>", "exec", dont_inherit=True)
    try:
        os.write(channel, b"R")
        message = b""
        size = None
        while size is None or len(message) < size:
            chunk = os.read(channel, 65536)
            if not chunk:
                os._exit(0)
            message += chunk
            if size is None and len(message) >= 8:
                size = 8 + int(message[:8])
        os.write(channel, b"A")
    except (OSError, ValueError):
        os._exit(0)
    os.close(channel)
    args = [os.fsdecode(arg) for arg in message[8:].split(b"\0")]
    del message, chunk, size
    del namespace["_snekbox_pool_launch"]
    namespace["__doc__"] = None
    sys.orig_argv = [sys.orig_argv[0], *args]
    # CPython 3.13+ registers -c code with linecache (for its tracebacks): in early 3.13
    # releases as cache["<string>"], in later ones per code object in _interactive_cache.
    # Those entries hold the launcher's source now: they go, the program's take their place
    # for -c, and for the other forms so does the module, which only the launcher's own -c
    # start imported.
    linecache = sys.modules.get("linecache")
    register = getattr(linecache, "_register_code", None)
    per_code = getattr(linecache, "_interactive_cache", None)
    if register is not None:
        store = linecache.cache if per_code is None else per_code
        for key in list(store):
            if (key[0] if isinstance(key, tuple) else key) == "<string>":
                del store[key]
        if args[0] != "-c" and not linecache.cache and not per_code:
            del sys.modules["linecache"]
            register = None
    script = None
    if args[0] == "-c":
        sys.argv = ["-c", *args[2:]]
    elif args[0] == "-m":
        sys.argv = ["-m", *args[2:]]
        sys.path[0] = os.getcwd()
    else:
        sys.argv = args
        script = os.path.abspath(args[0])
        sys.path[0] = os.path.dirname(script)
        namespace["__file__"] = script
        namespace["__cached__"] = None
        external = sys.modules["_frozen_importlib_external"]
        namespace["__loader__"] = external.SourceFileLoader("__main__", script)
    del linecache
    try:
        # Each branch runs the program from this very frame, so a traceback loses exactly one
        # frame (this one) to look as CPython's own would.
        if script is not None:
            with open(script, "rb") as source_file:
                source = source_file.read()
            exec(compile(source, script, "exec", dont_inherit=True), namespace)  # noqa: S102
        elif args[0] == "-c":
            compiled = compile(args[1], "<string>", "exec", dont_inherit=True)
            if register is not None:
                try:
                    register(compiled if per_code is not None else "<string>", args[1], "<string>")
                except Exception:  # noqa: S110 (a newer linecache: tracebacks show no source)
                    pass
            exec(compiled, namespace)  # noqa: S102
        else:
            import runpy

            runpy._run_module_as_main(args[1], alter_argv=True)
    except SystemExit:
        raise
    except BaseException as error:
        traceback = error.__traceback__.tb_next if error.__traceback__ else None
        error = error.with_traceback(traceback)
        sys.last_type, sys.last_value, sys.last_traceback = type(error), error, traceback
        if sys.version_info >= (3, 12):
            sys.last_exc = error
        sys.excepthook(type(error), error, traceback)
        code = 130 if isinstance(error, KeyboardInterrupt) else 1
    else:
        code = None
    if script is not None:
        namespace.pop("__file__", None)
        namespace.pop("__cached__", None)
    if code is not None:
        raise SystemExit(code) from None


if __name__ == "__main__":
    _snekbox_pool_launch()
